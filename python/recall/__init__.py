"""recall for Python: the same cache keys, store and cache as the `recall` CLI.

    import recall

    @recall.cached(store=recall.Store("file:///tmp/recall-store"), project="demo",
                   domain="dev", cache_version="1")
    def square(n: int) -> int:
        return n * n

Keys come from recall-key and every cache operation goes through the CLI's own clients
(crates/recall-py); see docs/PYTHON.md for the type mapping and the stored form of values.
"""

from ._cached import Dir, File, cached
from ._errors import (CacheWarning, Error, InvalidInput, InvalidType, NondeterminismWarning,
                      StorageError)
from ._key import Hash, Typed, key
from ._native import Key
from ._store import Daemon, Published, Store

__all__ = [
    "CacheWarning", "Daemon", "Dir", "Error", "File", "Hash", "InvalidInput", "InvalidType",
    "Key", "NondeterminismWarning", "Published", "StorageError", "Store", "Typed", "cached",
    "key",
]
