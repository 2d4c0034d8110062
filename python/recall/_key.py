"""`recall.key`: cache keys from Python values, derived by recall-key (docs/KEY-SPEC.md)."""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

from . import _native, _types
from ._errors import InvalidInput, InvalidType
from ._native import Key

_HEX = re.compile(r"[0-9a-fA-F]{64}\Z")


class Hash:
    """A caller-supplied digest for an input (Flyte's HashMethod): the input's value digest
    is these 32 bytes and its value is never read, so a 50 GB file can be keyed by a cheap
    fingerprint. `type` is the input's declared KEY-SPEC type (it is in the signature).

    >>> recall.key("p", "d", "t", "1", inputs={"big": recall.Hash("ab" * 32)})
    """

    __slots__ = ("hex", "type")

    def __init__(self, hex: str, type: str = "file") -> None:
        if not isinstance(hex, str):
            raise InvalidType(f"recall.Hash: the digest is a str of 64 hexadecimal "
                              f"characters, not {builtin_type(hex).__name__}")
        self.hex = hex
        self.type = type

    def __repr__(self) -> str:
        return f"recall.Hash({self.hex!r}, type={self.type!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hash) and (self.hex.lower(), self.type) == (
            other.hex.lower(), other.type)

    def __hash__(self) -> int:
        return hash((self.hex.lower(), self.type))


builtin_type = type


class Typed:
    """A value with its KEY-SPEC type declared, for values whose type cannot be inferred
    (an empty list, None, a struct) or should differ from the inferred one.

    >>> recall.Typed("list<int>", [])
    >>> recall.Typed("optional<string>", None)
    >>> recall.Typed("struct", {"lr": 0.1, "layers": [64, 64]})
    """

    __slots__ = ("type", "value")

    def __init__(self, type: str, value: Any) -> None:
        self.type = type
        self.value = value

    def __repr__(self) -> str:
        return f"recall.Typed({self.type!r}, {self.value!r})"


OutputType = Union[str, type, Any]

_FAST = {int: "int", float: "float", bool: "bool", str: "string", datetime.timedelta: "duration",
         datetime.datetime: "datetime"}


def _check_str(field: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str):
        raise InvalidType(f"{field}: expected a str, not {builtin_type(value).__name__} "
                          f"{value!r}")


def input_entry(name: Any, value: Any, declared: Optional[_types.Type],
                ignored: bool) -> dict:
    """One input of the key-material JSON (docs/KEY-SPEC.md section 8)."""
    if not isinstance(name, str):
        raise InvalidType(f"input names are str, not {builtin_type(name).__name__} {name!r}")
    if not ignored:
        # The common scalars, without the general path's checks (same result).
        kind = _FAST.get(builtin_type(value))
        if kind is not None and (declared is None or declared == (kind, None)):
            if kind == "float" and not math.isfinite(value):
                pass
            elif kind == "duration":
                return {"name": name, "type": kind, "value": _types.duration_ns(value)}
            elif kind == "datetime":
                if value.utcoffset() is not None:
                    return {"name": name, "type": kind, "value": _types.rfc3339(value)}
            else:
                return {"name": name, "type": kind, "value": value}
    where = f"input {_types.quote(name)}"
    if isinstance(value, Hash):
        ty = _types.parse_type(value.type, where)
        return {"name": name, "type": _types.type_text(ty), "hash": value.hex}
    if isinstance(value, Typed):
        declared = _types.parse_type(value.type, where)
        value = value.value
    if declared is None or declared == _types.PATH:
        if ignored and declared is None:
            try:
                declared = _types.infer(value, where)
            except InvalidType:
                # Never read: only its type is in the signature (docs/PYTHON.md).
                declared = ("string", None)
        elif declared == _types.PATH and isinstance(value, (str, os.PathLike)):
            declared = _types.path_type(value)
        else:
            declared = _types.infer(value, where)
    text = _types.type_text(declared)
    if ignored:
        return {"name": name, "type": text, "ignore": True}
    return {"name": name, "type": text, "value": _types.encode(declared, value, where)}


def output_type(name: Any, spec: OutputType) -> str:
    """An output's KEY-SPEC type text from a Python type or a type text."""
    if not isinstance(name, str):
        raise InvalidType(f"output names are str, not {builtin_type(name).__name__} {name!r}")
    where = f"output {_types.quote(name)}"
    if isinstance(spec, str):
        return _types.type_text(_types.parse_type(spec, where))
    return _types.type_text(_types.output_hint_type(spec, where))


def derive(document: dict, ignore: Iterable[str]) -> Key:
    """Derives the key of a key-material document with recall-key."""
    return _native.derive_key(_text(document), list(ignore), os.getcwd())


def _text(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, allow_nan=False)


def key(project: str, domain: str, task: str, cache_version: str,
        inputs: Optional[Mapping[str, Any]] = None,
        outputs: Optional[Mapping[str, OutputType]] = None,
        ignore: Iterable[str] = (), salt: Optional[str] = None) -> Key:
    """The cache key of a task run, exactly as `recall key` derives it.

    `inputs` maps each input name to its value: int, float, bool, str, bytes, an aware
    datetime.datetime, datetime.timedelta (a duration), list/tuple, dict with str keys,
    pathlib.Path (a file or directory, hashed by content), recall.Hash (a digest you computed)
    or recall.Typed(TYPE, value). `outputs` maps each output name to a Python type (int, str,
    bytes, pathlib.Path, recall.Dir, ...) or a KEY-SPEC type text ("file", "list<string>").
    Names in `ignore` stay in the signature but their values are not read.

    Raises InvalidType (also a TypeError) for a value that has no KEY-SPEC type, naming the
    input and the type, and InvalidInput (also a ValueError) for anything else the CLI
    rejects, with the CLI's message.

    >>> k = recall.key("flytesnacks", "development", "wf.square", "1.0",
    ...                inputs={"n": 3}, outputs={"o0": int})
    >>> k.hex  # the same as `recall key ... --input n:int=3 --output o0:int`
    """
    fast = _native.scalar_key(project, domain, task, cache_version, inputs, outputs,
                              ignore, salt)
    if fast is not None:
        return fast
    document, ignore = _document(project, domain, task, cache_version, inputs, outputs,
                                 ignore, salt)
    return derive(document, ignore)


def _ignore_list(ignore: Iterable[str]) -> list:
    if isinstance(ignore, str):
        raise InvalidType("ignore: expected a list of input names, not a str")
    ignore = list(ignore)
    for name in ignore:
        _check_str("ignore", name)
    return ignore


def _document(project: str, domain: str, task: str, cache_version: str,
              inputs: Optional[Mapping[str, Any]], outputs: Optional[Mapping[str, OutputType]],
              ignore: Iterable[str], salt: Optional[str]) -> Tuple[dict, list]:
    """The key-material document of `key`'s arguments (docs/KEY-SPEC.md section 8) and
    the list of ignored names."""
    _check_str("project", project)
    _check_str("domain", domain)
    _check_str("task", task)
    _check_str("cache_version", cache_version)
    _check_str("salt", salt, optional=True)
    ignore = _ignore_list(ignore)
    ignored = set(ignore)
    document: dict = {"project": project, "domain": domain, "task": task,
                      "cache_version": cache_version}
    document["inputs"] = [input_entry(name, value, None, name in ignored)
                          for name, value in (inputs or {}).items()]
    document["outputs"] = [{"name": name, "type": output_type(name, spec)}
                           for name, spec in (outputs or {}).items()]
    if salt is not None:
        document["salt"] = salt
    return document, ignore


def material_text(project: str, domain: str, task: str, cache_version: str,
                  inputs: Optional[Mapping[str, Any]],
                  outputs: Optional[Mapping[str, OutputType]], ignore: Iterable[str],
                  salt: Optional[str]) -> str:
    """The key-material JSON of `key`'s arguments, as `derive` passes it to recall-key:
    `Key.material_json()` of a key from `_native.scalar_key`, which never makes it."""
    return _text(_document(project, domain, task, cache_version, inputs, outputs, ignore,
                           salt)[0])


__all__ = ["Hash", "Key", "Typed", "key", "InvalidInput"]
