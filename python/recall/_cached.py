"""`@recall.cached`: Flyte-style memoization of a typed Python function.

It follows `recall run` step by step (crates/recall/src/run.rs): lookup, restore on a hit,
otherwise run and publish; `serialize` takes the entry's lease so one caller computes while
the others wait; storage trouble never turns a working call into a failed one (fail open).
The stored form of return values is documented in docs/PYTHON.md.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time
import typing
import warnings
from typing import Any, Callable, Iterable, List, Optional, Tuple, TypeVar

from . import _native, _types
from ._errors import CacheWarning, InvalidInput, InvalidType, NondeterminismWarning, StorageError
from ._key import derive, input_entry
from ._native import Key
from ._store import _Cache, open_cache

log = logging.getLogger("recall")

F = TypeVar("F", bound=Callable[..., Any])

#: A pathlib.Path output (or input) that is a directory: `-> recall.Dir`.
Dir = typing.Annotated[pathlib.Path, "dir"]
#: A pathlib.Path output that is a file (the default for pathlib.Path): `-> recall.File`.
File = typing.Annotated[pathlib.Path, "file"]


def _default_output_dir() -> pathlib.Path:
    env = os.environ.get("RECALL_OUTPUT_DIR")
    if env:
        return pathlib.Path(env)
    return pathlib.Path.home() / ".cache" / "recall" / "outputs"


class _Plan:
    """What a decorated function's annotations say: the inputs' declared types, the outputs
    and how to rebuild the return value. Resolved on first call (annotations may name
    classes defined after the function)."""

    def __init__(self, fn: Callable[..., Any], ignore: List[str],
                 localns: Optional[dict] = None) -> None:
        self.signature = inspect.signature(fn)
        where = f"{fn.__module__}.{fn.__qualname__}"
        for param in self.signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise InvalidType(f"{where}: parameter {param.name!r}: *args and **kwargs "
                                  f"are not supported; name every input")
        try:
            hints = typing.get_type_hints(fn, localns=localns, include_extras=True)
        except Exception as err:  # an annotation that does not resolve
            raise InvalidType(f"{where}: cannot resolve its annotations: {err}") from None
        self.inputs = {}
        for name in self.signature.parameters:
            hint = hints.get(name)
            self.inputs[name] = None if hint is None else _types.hint_type(hint)
        if "return" not in hints:
            raise InvalidType(f"{where}: needs a return annotation (-> int, -> "
                              f"tuple[int, str], -> pathlib.Path, -> None, ...): it declares "
                              f"the outputs the cache stores")
        self.shape, self.outputs, self.build = _outputs(hints["return"], where, localns)
        self.ignore = ignore


def _outputs(hint: Any, where: str,
             localns: Optional[dict]) -> Tuple[str, List[Tuple[str, _types.Type]], Any]:
    """(shape, [(output name, type)], class to rebuild) of a return annotation."""
    if hint is None or hint is type(None):
        return "none", [], None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if args == ((),):
            return "tuple", [], tuple
        return "tuple", [(f"o{i}", _types.output_hint_type(a, f"{where} output o{i}"))
                         for i, a in enumerate(args)], tuple
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        hints = typing.get_type_hints(hint, localns=localns, include_extras=True)
        return "fields", [(f, _types.output_hint_type(hints.get(f), f"{where} output {f!r}"))
                          for f in hint._fields], hint
    if _types.is_dataclass_type(hint):
        hints = typing.get_type_hints(hint, localns=localns, include_extras=True)
        return "fields", [(f.name, _types.output_hint_type(hints.get(f.name),
                                                           f"{where} output {f.name!r}"))
                          for f in dataclasses.fields(hint)], hint
    return "scalar", [("o0", _types.output_hint_type(hint, f"{where} output o0"))], None


def _task_name(fn: Callable[..., Any]) -> str:
    # flytekit names a task module.name; a function defined inside another has
    # "<locals>" in its qualname, which is not a valid name character sequence.
    return f"{fn.__module__}.{fn.__qualname__.replace('.<locals>', '')}"


class _Heartbeat:
    """Keeps the lease alive while the function runs (as `recall run --serialize`)."""

    def __init__(self, cache: _Cache, key: Key, owner: str, every: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(cache, key, owner, every),
                                        name="recall-heartbeat", daemon=True)
        self._thread.start()

    def _run(self, cache: _Cache, key: Key, owner: str, every: float) -> None:
        while not self._stop.wait(every):
            try:
                granted, holder, _ = cache._client.lease(key, owner, every)
                if not granted:
                    log.warning("recall: the lease of %s was taken over by %s; both may "
                                "compute", key.hex, holder)
            except Exception as err:  # never let the heartbeat kill the process
                log.warning("recall: lease heartbeat for %s failed: %s", key.hex, err)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cached(store: Any = None, *, project: str, domain: str, cache_version: str,
           ignore: Iterable[str] = (), serialize: bool = False, overwrite: bool = False,
           task: Optional[str] = None, salt: Optional[str] = None,
           output_dir: Any = None, heartbeat: float = 10.0, poll: float = 0.5,
           ) -> Callable[[F], F]:
    """Memoizes a function with type hints in a recall cache (Flyte's
    ``@task(cache=True, cache_version=...)``).

    The key is derived from project, domain, cache_version, the task name (the function's
    ``module.qualname`` unless ``task=`` is given), the signature (parameter names and the
    types their annotations declare, outputs from the return annotation) and the call's
    arguments, bound to the parameters with defaults applied. On a hit the stored value is
    returned and the function is not called. ``store`` is a recall.Store, recall.Daemon, a
    URL, or None for RECALL_STORE / RECALL_DAEMON.

    * ``ignore``: parameters left out of the key (Flyte's cache_ignore_input_vars).
    * ``serialize``: of concurrent calls with one key (threads, processes, machines), one
      computes while the others wait on a lease and then hit (Flyte's cache_serialize).
    * ``overwrite``: always run and replace the entry (Flyte's overwrite_cache).
    * ``output_dir``: where pathlib.Path outputs of a hit are restored
      (``<output_dir>/<key>/<output>``; default RECALL_OUTPUT_DIR or
      ~/.cache/recall/outputs).

    Storage down or slow: the function runs and a CacheWarning says CACHE_LOOKUP_FAILURE
    (then nothing is published) or CACHE_PUT_FAILURE. A re-computation whose outputs differ
    from the stored entry's raises a NondeterminismWarning. Bad inputs (a value of no
    KEY-SPEC type, a bad name) raise InvalidType / InvalidInput before the function runs.
    """
    if isinstance(ignore, str):
        raise InvalidType("ignore: expected a list of parameter names, not a str")
    ignore = list(ignore)
    for name, value in (("project", project), ("domain", domain),
                        ("cache_version", cache_version)):
        if not isinstance(value, str):
            raise InvalidType(f"{name}: expected a str, not {type(value).__name__} {value!r}")

    def decorate(fn: F) -> F:
        # Annotations may be strings (`from __future__ import annotations`) naming classes
        # local to the function that applies the decorator: resolve them there too.
        caller = sys._getframe(1)
        localns = dict(caller.f_locals) if caller.f_code.co_name != "<module>" else None
        del caller
        task_name = task if task is not None else _task_name(fn)
        state: dict = {}
        lock = threading.Lock()

        def plan() -> _Plan:
            with lock:
                if "plan" not in state:
                    state["plan"] = _Plan(fn, ignore, localns)
                return state["plan"]

        def cache() -> _Cache:
            with lock:
                if "cache" not in state:
                    state["cache"] = open_cache(store)
                return state["cache"]

        def key_of(bound: inspect.BoundArguments) -> Key:
            p = plan()
            document: dict = {"project": project, "domain": domain, "task": task_name,
                              "cache_version": cache_version}
            document["inputs"] = [input_entry(name, value, p.inputs.get(name),
                                              name in ignore)
                                  for name, value in bound.arguments.items()]
            document["outputs"] = [{"name": n, "type": _types.type_text(t)}
                                   for n, t in p.outputs]
            if salt is not None:
                document["salt"] = salt
            return derive(document, ignore)

        def bind(args: Any, kwargs: Any) -> inspect.BoundArguments:
            bound = plan().signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return bound

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = bind(args, kwargs)
            key = key_of(bound)
            return _Call(plan(), key, serialize, overwrite, heartbeat, poll,
                         pathlib.Path(output_dir) if output_dir else _default_output_dir(),
                         cache).run(lambda: fn(*bound.args, **bound.kwargs))

        def recall_key(*args: Any, **kwargs: Any) -> Key:
            """The key a call with these arguments uses (the function is not called)."""
            return key_of(bind(args, kwargs))

        wrapper.recall_key = recall_key  # type: ignore[attr-defined]
        wrapper.recall_task = task_name  # type: ignore[attr-defined]
        return typing.cast(F, wrapper)

    return decorate


class _Call:
    """One call of a decorated function."""

    def __init__(self, plan: _Plan, key: Key, serialize: bool, overwrite: bool,
                 heartbeat: float, poll: float, output_dir: pathlib.Path,
                 cache: Callable[[], _Cache]) -> None:
        self.plan = plan
        self.key = key
        self.short = key.hex
        self.serialize = serialize
        self.overwrite = overwrite
        self.heartbeat = heartbeat
        self.poll = poll
        self.output_dir = output_dir
        self.open_cache = cache

    def run(self, call: Callable[[], Any]) -> Any:
        owner = _native.lease_owner() + f"/{threading.get_ident()}"
        lease: Optional[_Cache] = None
        publish_to: Optional[_Cache] = None
        try:
            cache = self.open_cache()
            decided = self._decide(cache, owner)
            if decided is not None and decided[0]:
                return decided[1]
            publish_to = cache
            if decided is not None and decided[2]:
                lease = cache
        except StorageError as err:
            warnings.warn(f"CACHE_LOOKUP_FAILURE {self.short}: {err}", CacheWarning,
                          stacklevel=3)
        beat = _Heartbeat(lease, self.key, owner, self.heartbeat) if lease else None
        try:
            try:
                result = call()
            finally:
                if beat:
                    beat.stop()
            if publish_to is None:
                warnings.warn(f"CACHE_PUT_FAILURE {self.short}: storage was unavailable at "
                              f"lookup; nothing published", CacheWarning, stacklevel=3)
            else:
                self._publish(publish_to, result)
        finally:
            if lease is not None:
                try:
                    lease._client.release(self.key, owner)
                except Exception as err:
                    log.warning("recall: could not release the lease of %s (it lapses on its "
                                "own): %s", self.short, err)
        return result

    def _decide(self, cache: _Cache, owner: str) -> Optional[Tuple[bool, Any, bool]]:
        """(hit, value, lease held), looking up and (with serialize) waiting for a lease
        until the call either hits or must compute. StorageError means storage failed."""
        if self.overwrite:
            log.info("CACHE_SKIPPED %s", self.short)
        announced = False
        failing_since: Optional[float] = None
        while True:
            if not self.overwrite:
                hit, value = self._restore(cache)
                if hit:
                    log.info("CACHE_HIT %s", self.short)
                    return True, value, False
                if not announced:
                    log.info("CACHE_MISS %s", self.short)
            if not self.serialize:
                return False, None, False
            try:
                granted, holder, _expires = cache._client.lease(self.key, owner,
                                                                self.heartbeat)
                failing_since = None
            except StorageError as err:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= 30.0:
                    raise
                log.warning("lease request failed, asking again: %s", err)
                time.sleep(self.poll)
                continue
            if granted:
                if not self.overwrite:
                    # A holder may have published and released between lookup and lease.
                    hit, value = self._restore(cache)
                    if hit:
                        cache._client.release(self.key, owner)
                        return True, value, False
                return False, None, True
            if not announced:
                log.info("CACHE_WAITING %s: %s is computing it", self.short, holder)
                announced = True
            time.sleep(self.poll)

    def _restore(self, cache: _Cache) -> Tuple[bool, Any]:
        """Fetches and decodes a hit; (False, None) on a miss or an unusable entry."""
        outputs = self.plan.outputs
        scratch = tempfile.mkdtemp(prefix="recall-values-")
        try:
            targets = []
            for name, ty in outputs:
                if ty[0] in ("file", "dir"):
                    targets.append((name, self.output_dir / self.short / name))
                else:
                    targets.append((name, pathlib.Path(scratch) / name))
            if cache._client.get(self.key, targets) is None:
                return False, None
            values = []
            for (name, ty), (_, path) in zip(outputs, targets):
                if ty[0] in ("file", "dir"):
                    values.append(path)
                else:
                    values.append(_types.undumps(ty, path.read_bytes(),
                                                 f"output {_types.quote(name)}"))
        except InvalidInput as err:
            warnings.warn(f"recall: could not restore the cached outputs of {self.short} "
                          f"({err}); running the function", CacheWarning, stacklevel=5)
            return False, None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return True, self._build(values)

    def _build(self, values: List[Any]) -> Any:
        shape, build = self.plan.shape, self.plan.build
        if shape == "none":
            return None
        if shape == "scalar":
            return values[0]
        if shape == "tuple":
            return tuple(values)
        if isinstance(build, type) and issubclass(build, tuple):
            return build(*values)
        return build(**{name: v for (name, _), v in zip(self.plan.outputs, values)})

    def _values(self, result: Any) -> List[Any]:
        shape, outputs = self.plan.shape, self.plan.outputs
        if shape == "none":
            return []
        if shape == "scalar":
            return [result]
        if shape == "tuple":
            if not isinstance(result, tuple) or len(result) != len(outputs):
                raise InvalidType(f"the function returned {type(result).__name__} "
                                  f"{result!r:.80}, not a tuple of {len(outputs)}")
            return list(result)
        build = self.plan.build
        if not isinstance(result, build):
            raise InvalidType(f"the function returned {type(result).__name__}, not "
                              f"{build.__name__}")
        return [getattr(result, name) for name, _ in outputs]

    def _publish(self, cache: _Cache, result: Any) -> None:
        try:
            files, blobs = [], []
            for (name, ty), value in zip(self.plan.outputs, self._values(result)):
                where = f"output {_types.quote(name)}"
                if ty[0] in ("file", "dir"):
                    if not isinstance(value, (str, os.PathLike)):
                        raise InvalidType(f"{where} of type {ty[0]}: the function returned "
                                          f"{type(value).__name__}, not a path")
                    files.append((name, pathlib.Path(os.fspath(value)).absolute()))
                else:
                    blobs.append((name, _types.dumps(ty, value, where)))
        except InvalidInput as err:
            warnings.warn(f"recall: nothing published for {self.short}: {err}", CacheWarning,
                          stacklevel=4)
            return
        try:
            published, lines = cache._client.publish(self.key, files, blobs, self.overwrite)
        except StorageError as err:
            warnings.warn(f"CACHE_PUT_FAILURE {self.short}: {err}", CacheWarning, stacklevel=4)
            return
        except InvalidInput as err:
            warnings.warn(f"recall: nothing published for {self.short}: {err}", CacheWarning,
                          stacklevel=4)
            return
        log.info("CACHE_POPULATED %s%s", self.short,
                 "" if published else ": another run published it first; its entry was kept")
        for line in lines:
            warnings.warn(line, NondeterminismWarning, stacklevel=4)
