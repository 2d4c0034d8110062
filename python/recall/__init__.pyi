"""Type stubs of the public API of `recall` (the implementation is in the modules beside)."""

import datetime
import os
import pathlib
from typing import (Annotated, Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional,
                    TypeVar, Union)


from ._native import Key as Key

_F = TypeVar("_F", bound=Callable[..., Any])
_Path = Union[str, "os.PathLike[str]"]
_Seconds = Union[float, int, datetime.timedelta, None]

class Error(Exception): ...
class InvalidInput(Error, ValueError): ...
class InvalidType(InvalidInput, TypeError): ...
class StorageError(Error): ...
class CacheWarning(UserWarning): ...
class NondeterminismWarning(CacheWarning): ...

class Hash:
    hex: str
    type: str
    def __init__(self, hex: str, type: str = "file") -> None: ...

class Typed:
    type: str
    value: Any
    def __init__(self, type: str, value: Any) -> None: ...

Dir = Annotated[pathlib.Path, "dir"]
File = Annotated[pathlib.Path, "file"]

def key(project: str, domain: str, task: str, cache_version: str,
        inputs: Optional[Mapping[str, Any]] = None,
        outputs: Optional[Mapping[str, Union[str, type, Any]]] = None,
        ignore: Iterable[str] = (), salt: Optional[str] = None) -> Key: ...

class Published(NamedTuple):
    published: bool
    nondeterminism: List[str]

class _Cache:
    url: str
    def lookup(self, key: Key) -> Optional[Dict[str, Any]]: ...
    def miss_reason(self, key: Key) -> Optional[str]: ...
    def get(self, key: Key, outputs: Mapping[str, _Path]) -> Optional[Dict[str, pathlib.Path]]: ...
    def get_bytes(self, key: Key, name: str) -> Optional[bytes]: ...
    def put(self, key: Key, outputs: Mapping[str, Union[bytes, _Path]], *,
            overwrite: bool = False) -> Published: ...
    def publish(self, key: Key, outputs: Mapping[str, Union[bytes, _Path]], *,
                overwrite: bool = False) -> Published: ...
    def inspect(self, key: Key) -> Optional[Dict[str, Any]]: ...
    def evict(self, key: Key, *, dry_run: bool = False) -> Dict[str, Any]: ...
    def evict_task(self, project: str, domain: str, task: str,
                   cache_version: Optional[str] = None, *,
                   dry_run: bool = False) -> Dict[str, Any]: ...
    def explain(self, key: Key) -> Dict[str, Any]: ...

class Store(_Cache):
    def __init__(self, url: str, *, storage_timeout: _Seconds = 30.0,
                 max_age: _Seconds = None, producer: Optional[str] = None,
                 **options: Union[str, int, float, bool]) -> None: ...

class Daemon(_Cache):
    def __init__(self, url: str, token: Optional[str] = None, *,
                 storage_timeout: _Seconds = 30.0, max_age: _Seconds = None) -> None: ...

def cached(store: Union[Store, Daemon, str, None] = None, *, project: str, domain: str,
           cache_version: str, ignore: Iterable[str] = (), serialize: bool = False,
           overwrite: bool = False, task: Optional[str] = None, salt: Optional[str] = None,
           output_dir: Optional[_Path] = None, heartbeat: float = 10.0,
           poll: float = 0.5) -> Callable[[_F], _F]: ...
