"""`recall.Store` and `recall.Daemon`: the cache through the recall CLI's own clients."""

from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
import warnings
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Union

from . import _native
from ._errors import InvalidType, NondeterminismWarning
from ._native import Key

PathLike = Union[str, "os.PathLike[str]"]


class Published(NamedTuple):
    """What a put did."""

    #: Whether this call's outputs became the entry (False: an entry already existed and
    #: was kept, as `recall put` says CACHE_EXISTS).
    published: bool
    #: One CACHE_NONDETERMINISTIC line per output whose digest differs from the entry met.
    nondeterminism: List[str]


def _seconds(field: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidType(f"{field}: expected seconds (a number) or a datetime.timedelta, not "
                      f"{type(value).__name__} {value!r}")


def _key(value: Any) -> Key:
    if not isinstance(value, Key):
        raise InvalidType(f"key: expected a recall.Key (from recall.key(...)), not "
                          f"{type(value).__name__} {value!r}")
    return value


class _Cache:
    """The operations Store and Daemon share; each is the CLI subcommand of the same name."""

    _client: Any

    def __repr__(self) -> str:
        return f"recall.{type(self).__name__}({self._client.describe()!r})"

    def lookup(self, key: Key) -> Optional[Dict[str, Any]]:
        """The entry's manifest (as `recall inspect --json` shows it) if `key` is a hit,
        else None. Reads no outputs."""
        manifest, _miss = self._client.lookup(_key(key))
        return None if manifest is None else json.loads(manifest)

    def miss_reason(self, key: Key) -> Optional[str]:
        """None on a hit; on a miss the CLI's reason ("no entry", "the entry expired ...")."""
        _manifest, miss = self._client.lookup(_key(key))
        return miss

    def get(self, key: Key, outputs: Mapping[str, PathLike]) -> Optional[Dict[str, pathlib.Path]]:
        """Fetches the entry's outputs, verifies every byte, and writes each output named in
        `outputs` to its path atomically: a file is written beside its target and renamed
        into place, a dir output is unpacked beside it and swapped in whole (what was at the
        path is replaced). Returns {name: path} on a hit.

        **A miss returns None** and writes nothing (like `recall get`'s exit status 1); a
        broken entry (a blob missing or corrupt) is a miss and is removed. An output name
        the entry does not have raises InvalidInput."""
        targets = [(name, pathlib.Path(os.fspath(path)).absolute())
                   for name, path in outputs.items()]
        manifest = self._client.get(_key(key), targets)
        if manifest is None:
            return None
        return dict(targets)

    def get_bytes(self, key: Key, name: str) -> Optional[bytes]:
        """One output's verified bytes (a dir output's tar archive), or None on a miss."""
        return self._client.get_bytes(_key(key), name)

    def put(self, key: Key, outputs: Mapping[str, Union[bytes, PathLike]], *,
            overwrite: bool = False) -> Published:
        """Publishes outputs as the entry of `key`, as `recall put` does: each declared
        output is given as bytes (its content) or a path (a file, or a directory for a
        `dir` output, archived as docs/LAYOUT.md 4.3 says). An existing live entry is kept
        unless `overwrite`. Outputs that differ from the entry met raise a
        NondeterminismWarning (and are recorded in the manifest)."""
        files, blobs = [], []
        for name, value in outputs.items():
            if isinstance(value, (bytes, bytearray, memoryview)):
                blobs.append((name, bytes(value)))
            elif isinstance(value, (str, os.PathLike)):
                files.append((name, pathlib.Path(os.fspath(value)).absolute()))
            else:
                raise InvalidType(f"output {json.dumps(name)}: expected bytes (the content) "
                                  f"or a path, not {type(value).__name__}")
        published, lines = self._client.publish(_key(key), files, blobs, overwrite)
        for line in lines:
            warnings.warn(line, NondeterminismWarning, stacklevel=2)
        return Published(published, lines)

    publish = put

    def inspect(self, key: Key) -> Optional[Dict[str, Any]]:
        """The manifest at the entry's path even when expired (`recall inspect --json`:
        status live/expired, outputs, producer, nondeterminism records), or None."""
        manifest = self._client.inspect(_key(key))
        return None if manifest is None else json.loads(manifest)

    def evict(self, key: Key, *, dry_run: bool = False) -> Dict[str, Any]:
        """Removes the entry of `key` (`recall evict --key`); counts of what went."""
        return json.loads(self._client.evict(_key(key), dry_run))

    def evict_task(self, project: str, domain: str, task: str,
                   cache_version: Optional[str] = None, *,
                   dry_run: bool = False) -> Dict[str, Any]:
        """Removes every entry of a task, or of one cache_version (`recall evict --task`)."""
        return json.loads(self._client.evict_task(project, domain, task, cache_version,
                                                  dry_run))

    def explain(self, key: Key) -> Dict[str, Any]:
        """Why `key` misses (`recall explain --json`): a verdict ("hit", "cache_version",
        "signature", "inputs", ...), reasons for people, and the closest stored entries."""
        return json.loads(self._client.explain(_key(key)))


class Store(_Cache):
    """A cache straight on an object store, as `recall --store URL`:

    * ``file:///abs/path`` (local disk), ``s3://bucket/prefix`` (the standard AWS_*
      variables; AWS_ENDPOINT_URL for MinIO or moto), ``gs://bucket/prefix``,
      ``az://container/prefix``, ``memory://`` (this process only).

    Options: ``storage_timeout`` (seconds or timedelta, default 30: the longest wait for
    one lookup, lease or store opening), ``max_age`` (entries older than this are misses),
    ``producer`` (recorded in manifests; default host/pid). Any other keyword is a backend
    setting, an object_store configuration key that takes precedence over the environment:
    ``recall.Store("s3://bucket/cache", aws_endpoint="http://127.0.0.1:9000",
    aws_region="us-east-1")``; an unknown key raises InvalidInput.

    The URL is checked at once (InvalidInput); the store itself is opened on first use,
    so a store that is down raises StorageError from the call that needs it (and
    ``@recall.cached`` then runs the function without the cache).
    """

    def __init__(self, url: str, *, storage_timeout: Any = 30.0, max_age: Any = None,
                 producer: Optional[str] = None, **options: Any) -> None:
        if not isinstance(url, str):
            raise InvalidType(f"store URL: expected a str, not {type(url).__name__}")
        settings = []
        for name, value in options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, (str, int, float)):
                raise InvalidType(f"store option {name}: expected a str, not "
                                  f"{type(value).__name__} {value!r}")
            settings.append((name, str(value)))
        self.url = url
        self._client = _native.Client.store(
            url, _seconds("storage_timeout", storage_timeout),
            _seconds("max_age", max_age), producer, settings)


class Daemon(_Cache):
    """The cache through recalld, as `recall --daemon URL [--token T]`: the same methods as
    Store. `token` defaults to the RECALL_TOKEN environment variable. Inputs are sent as
    digests (recalld reads no local files), which gives the same keys."""

    def __init__(self, url: str, token: Optional[str] = None, *,
                 storage_timeout: Any = 30.0, max_age: Any = None) -> None:
        if not isinstance(url, str):
            raise InvalidType(f"daemon URL: expected a str, not {type(url).__name__}")
        if token is None:
            token = os.environ.get("RECALL_TOKEN") or None
        self.url = url
        self._client = _native.Client.daemon(
            url, token, _seconds("storage_timeout", storage_timeout),
            _seconds("max_age", max_age))


def open_cache(spec: Any) -> _Cache:
    """A Store or Daemon from what `@recall.cached(store=...)` was given: the object itself,
    a URL (http(s):// means recalld), or None for RECALL_STORE / RECALL_DAEMON."""
    if isinstance(spec, _Cache):
        return spec
    if spec is None:
        store = os.environ.get("RECALL_STORE")
        daemon = os.environ.get("RECALL_DAEMON")
        if store and daemon:
            from ._errors import InvalidInput
            raise InvalidInput("give either RECALL_STORE or RECALL_DAEMON, not both")
        if daemon:
            return Daemon(daemon)
        if store:
            return Store(store)
        from ._errors import InvalidInput
        raise InvalidInput("no cache: give store=recall.Store(URL) (e.g. "
                           "file:///var/cache/recall) or recall.Daemon(URL), or set "
                           "RECALL_STORE / RECALL_DAEMON")
    if isinstance(spec, str):
        if spec.startswith(("http://", "https://")):
            return Daemon(spec)
        return Store(spec)
    raise InvalidType(f"store: expected a recall.Store, recall.Daemon or URL, not "
                      f"{type(spec).__name__} {spec!r}")
