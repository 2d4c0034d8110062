"""recall's exceptions and warnings. Messages are the ones the recall CLI prints."""

from __future__ import annotations


class Error(Exception):
    """Base class of every error recall raises."""


class InvalidInput(Error, ValueError):
    """Bad key material, a bad option or a bad path: the message names the field and value
    (the CLI's exit status 2)."""


class InvalidType(InvalidInput, TypeError):
    """A Python value or annotation that has no KEY-SPEC type, or a value that does not fit
    its declared type; names the input and the type."""


class StorageError(Error):
    """The store or daemon failed or did not answer in time (the CLI's exit status 3)."""


class CacheWarning(UserWarning):
    """The cache could not be used and the function ran without it (fail open), or its
    result could not be stored. The message starts with the CLI's status word
    (CACHE_LOOKUP_FAILURE, CACHE_PUT_FAILURE, ...)."""


class NondeterminismWarning(CacheWarning):
    """A re-computation produced outputs that differ from the stored entry's
    (CACHE_NONDETERMINISTIC, as `recall run` says it)."""
