"""Python values and annotations <-> KEY-SPEC types and their JSON forms.

docs/KEY-SPEC.md section 4 defines the types and section 8 their JSON forms. This module
turns a Python value into the JSON form of its declared (or inferred) type, so that the
native module can read it exactly as `recall key --spec FILE` reads key material, and turns
a stored JSON form back into a Python value. It does no hashing: keys come from recall-key.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import dataclasses
import datetime as _dt
import functools
import json
import math
import numbers
import os
import pathlib
import re
import types
import typing
from typing import Any, Optional, Tuple

from . import _native
from ._errors import InvalidInput, InvalidType

# A parsed type: (kind, inner), inner being a parsed type for list, map and optional.
Type = Tuple[str, Optional["Type"]]

SIMPLE = ("int", "float", "bool", "string", "bytes", "datetime", "duration", "struct",
          "file", "dir")
_GENERIC = (("list<", "list"), ("map<string,", "map"), ("optional<", "optional"))


def quote(text: str) -> str:
    """A name quoted as the recall CLI quotes it in messages."""
    return json.dumps(text, ensure_ascii=False)


def _parse(text: str) -> Type:
    if text in SIMPLE:
        return (text, None)
    for prefix, kind in _GENERIC:
        if text.startswith(prefix) and text.endswith(">"):
            inner = _parse(text[len(prefix):-1])
            if kind == "optional" and inner[0] == "optional":
                raise ValueError(text)
            return (kind, inner)
    raise ValueError(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Type:
    if text.count("<") > 16:
        raise ValueError(text)
    return _parse(text)


def parse_type(text: Any, field: str) -> Type:
    """Parses a KEY-SPEC type text; a bad one raises InvalidInput with the CLI's message."""
    if not isinstance(text, str):
        raise InvalidType(f"{field}: a type is a KEY-SPEC type text such as \"int\" or "
                          f"\"list<string>\", not {type(text).__name__} {text!r}")
    try:
        return _parse_cached(text)
    except ValueError:
        _native.check_type(field, text)  # raises with recall-key's message
        raise InvalidInput(f"invalid type {quote(text)} for {field}") from None


def type_text(ty: Type) -> str:
    """The canonical text of a parsed type."""
    kind, inner = ty
    if inner is None:
        return kind
    if kind == "map":
        return f"map<string,{type_text(inner)}>"
    return f"{kind}<{type_text(inner)}>"


# ---- Python value -> JSON form -------------------------------------------------------------

def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def _bad(where: str, ty: Type, value: Any, expected: str) -> InvalidType:
    return InvalidType(f"{where} of type {type_text(ty)}: cannot use {_describe(value)}: "
                       f"expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def rfc3339(value: _dt.datetime) -> str:
    utc = value.astimezone(_dt.timezone.utc)
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:" \
           f"{utc.second:02d}"
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def duration_ns(value: _dt.timedelta) -> int:
    return ((value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds) * 1000


def encode(ty: Type, value: Any, where: str) -> Any:
    """The JSON form (docs/KEY-SPEC.md section 8) of `value` as a `ty`, as Python JSON data;
    raises InvalidType naming `where` when the value does not fit."""
    kind, inner = ty
    if kind == "int":
        if not _is_int(value):
            raise _bad(where, ty, value, "an int")
        return int(value)
    if kind == "float":
        if _is_int(value):
            return int(value)  # the JSON number token of an int is read as that float
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise _bad(where, ty, value, "a float or an int")
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(where, ty, value, "a bool")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise _bad(where, ty, value, "a str")
        return value
    if kind == "bytes":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _bad(where, ty, value, "bytes")
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "datetime":
        if not isinstance(value, _dt.datetime) or value.utcoffset() is None:
            raise _bad(where, ty, value, "a datetime.datetime with a time zone (tzinfo); a "
                                         "naive datetime names no instant")
        return rfc3339(value)
    if kind == "duration":
        if isinstance(value, _dt.timedelta):
            return duration_ns(value)
        if _is_int(value):
            return int(value)
        raise _bad(where, ty, value, "a datetime.timedelta or an int of nanoseconds")
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            raise _bad(where, ty, value, "a list or tuple")
        return [encode(inner, v, f"{where} element {i}") for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, typing.Mapping):
            raise _bad(where, ty, value, "a dict with str keys")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _bad(where, ty, value, f"str keys, not {type(k).__name__} {k!r}")
            out[k] = encode(inner, v, f"{where} key {quote(k)}")
        return out
    if kind == "optional":
        return None if value is None else encode(inner, value, where)
    if kind == "struct":
        if not isinstance(value, typing.Mapping):
            raise _bad(where, ty, value, "a dict with str keys (a JSON object)")
        return _struct(value, where, ty)
    if kind in ("file", "dir"):
        if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
            raise _bad(where, ty, value, "a pathlib.Path or str path")
        path = os.fspath(value)
        if not isinstance(path, str):
            raise _bad(where, ty, value, "a str path")
        return os.path.abspath(path)
    raise _bad(where, ty, value, "a value of a known type")  # not reached: types are parsed


def _struct(value: Any, where: str, ty: Type) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if _is_int(value):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise _bad(where, ty, value, "finite numbers only (a struct is JSON)")
        return number
    if isinstance(value, typing.Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _bad(where, ty, k, "str object keys")
            out[k] = _struct(v, f"{where} key {quote(k)}", ty)
        return out
    if isinstance(value, (list, tuple)):
        return [_struct(v, f"{where} element {i}", ty) for i, v in enumerate(value)]
    raise _bad(where, ty, value, "JSON data: dict, list, str, int, float, bool or None")


# ---- inferring a type from a value ---------------------------------------------------------

SUPPORTED = ("int, float, bool, str, bytes, datetime.datetime with a time zone, "
             "datetime.timedelta, list, tuple, dict with str keys, pathlib.Path, recall.Hash "
             "or recall.Typed")


def _unify(types: list, where: str, what: str) -> Type:
    kinds = set(types)
    if not kinds - {None}:
        raise InvalidType(f"{where}: cannot tell the type of {what} that holds only None: "
                          f"declare it, e.g. recall.Typed(\"list<optional<int>>\", ...)")
    nullable = None in kinds
    kinds.discard(None)
    if kinds == {("int", None), ("float", None)}:
        kinds = {("float", None)}
    if len(kinds) != 1:
        names = ", ".join(sorted(type_text(k) for k in kinds))
        raise InvalidType(f"{where}: {what} mixes values of types {names}: declare one type "
                          f"with recall.Typed(TYPE, value)")
    (ty,) = kinds
    if nullable and ty[0] != "optional":
        ty = ("optional", ty)
    return ty


def infer(value: Any, where: str) -> Type:
    """The KEY-SPEC type a Python value maps to; InvalidType names `where` and the type."""
    if isinstance(value, bool):
        return ("bool", None)
    if isinstance(value, numbers.Integral):
        return ("int", None)
    if isinstance(value, numbers.Real):
        return ("float", None)
    if isinstance(value, str):
        return ("string", None)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("bytes", None)
    if isinstance(value, _dt.datetime):
        return ("datetime", None)
    if isinstance(value, _dt.timedelta):
        return ("duration", None)
    if isinstance(value, os.PathLike):
        return path_type(value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidType(f"{where}: cannot tell the element type of an empty "
                              f"{type(value).__name__}: declare it, e.g. "
                              f"recall.Typed(\"list<int>\", [])")
        items = [None if v is None else infer(v, f"{where} element {i}")
                 for i, v in enumerate(value)]
        return ("list", _unify(items, where, "the list"))
    if isinstance(value, typing.Mapping):
        if not value:
            raise InvalidType(f"{where}: cannot tell the value type of an empty dict: declare "
                              f"it, e.g. recall.Typed(\"map<string,int>\", {{}}) or "
                              f"recall.Typed(\"struct\", {{}})")
        for k in value:
            if not isinstance(k, str):
                raise InvalidType(f"{where}: a dict needs str keys, not {type(k).__name__} "
                                  f"{k!r}")
        items = [None if v is None else infer(v, f"{where} key {quote(k)}")
                 for k, v in value.items()]
        return ("map", _unify(items, where, "the dict"))
    if value is None:
        raise InvalidType(f"{where}: None has no type of its own: declare it, e.g. "
                          f"recall.Typed(\"optional<int>\", None) or a parameter annotation "
                          f"Optional[int]")
    raise InvalidType(f"{where}: a value of Python type {type(value).__module__}."
                      f"{type(value).__qualname__} has no KEY-SPEC type (supported: "
                      f"{SUPPORTED})")


def path_type(value: Any) -> Type:
    """`dir` for a path naming a directory, else `file` (a missing path is reported by the
    key derivation, naming the input and the path)."""
    return ("dir", None) if os.path.isdir(os.fspath(value)) else ("file", None)


# ---- annotations -> types ------------------------------------------------------------------

PATH = ("path", None)  # a pathlib.Path parameter: file or dir, by what the path names


def hint_type(hint: Any) -> Optional[Type]:
    """The KEY-SPEC type an annotation declares; PATH for pathlib paths (file or dir by
    content), None when the annotation says nothing usable (then the value decides)."""
    if hint is None or hint is type(None):
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        for meta in args[1:]:
            if isinstance(meta, str):
                return parse_type(meta, f"annotation {hint!r}")
        return hint_type(args[0])
    if hint is bool:
        return ("bool", None)
    if hint is int:
        return ("int", None)
    if hint is float:
        return ("float", None)
    if hint is str:
        return ("string", None)
    if hint in (bytes, bytearray):
        return ("bytes", None)
    if hint is _dt.datetime:
        return ("datetime", None)
    if hint is _dt.timedelta:
        return ("duration", None)
    if isinstance(hint, type) and issubclass(hint, pathlib.PurePath):
        return PATH
    if hint is dict or hint is typing.Dict:
        return ("struct", None)
    if origin in (list, tuple, cabc.Sequence):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return None
        inner = hint_type(args[0]) if args else None
        if inner is None or inner == PATH:
            return None
        return ("list", inner)
    if origin in (dict, cabc.Mapping):
        if len(args) == 2 and args[0] is str:
            if args[1] is Any:
                return ("struct", None)
            inner = hint_type(args[1])
            return None if inner is None or inner == PATH else ("map", inner)
        return None
    if _is_union(origin):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            inner = hint_type(rest[0])
            if inner is None or inner == PATH:
                return None
            return inner if inner[0] == "optional" else ("optional", inner)
    return None


def _is_union(origin: Any) -> bool:
    if origin is typing.Union:
        return True
    union_type = getattr(types, "UnionType", None)
    return union_type is not None and origin is union_type


def output_hint_type(hint: Any, where: str) -> Type:
    """The type of an output from its annotation: a pathlib path is a `file` unless
    annotated as a dir (recall.Dir)."""
    ty = hint_type(hint)
    if ty == PATH:
        return ("file", None)
    if ty is None:
        raise InvalidType(f"{where}: the annotation {hint!r} has no KEY-SPEC type (use int, "
                          f"float, bool, str, bytes, datetime, timedelta, list[T], "
                          f"dict[str, T], Optional[T], pathlib.Path, recall.Dir or "
                          f"Annotated[T, \"type\"])")
    return ty


# ---- JSON form -> Python value -------------------------------------------------------------

class _Number(str):
    """A JSON number token, kept as its text (docs/KEY-SPEC.md section 8)."""


_INT_TOKEN = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> Any:
    """Parses JSON keeping number tokens as text."""
    return json.loads(text, parse_int=_Number, parse_float=_Number,
                      parse_constant=_reject_constant)


class NotRepresentable(InvalidInput):
    """A stored value that Python's types cannot hold exactly (a nanosecond datetime)."""


def parse_datetime(text: str, where: str) -> _dt.datetime:
    """An RFC 3339 date-time as an aware datetime in UTC."""
    m = _DATETIME.match(text)
    if not m:
        raise InvalidInput(f"{where}: {quote(text)} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    fraction = (m.group(7) or "").ljust(9, "0")
    nanos = int(fraction) if fraction else 0
    if nanos % 1000:
        raise NotRepresentable(f"{where}: {quote(text)} has nanoseconds, which a Python "
                               f"datetime cannot hold")
    if m.group(8):
        offset = _dt.timedelta(0)
    else:
        offset = _dt.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if m.group(9) == "-":
            offset = -offset
    try:
        local = _dt.datetime(year, month, day, hour, minute, second, nanos // 1000,
                             tzinfo=_dt.timezone(offset))
        return local.astimezone(_dt.timezone.utc)
    except (ValueError, OverflowError) as err:
        raise NotRepresentable(f"{where}: {quote(text)}: {err}") from None


def decode(ty: Type, data: Any, where: str) -> Any:
    """The Python value of a JSON form (as parsed by `loads`) of type `ty`."""
    kind, inner = ty

    def bad(expected: str) -> InvalidInput:
        return InvalidInput(f"{where} of type {type_text(ty)}: stored value "
                            f"{_describe(data)} is not {expected}")

    if kind == "int":
        if isinstance(data, _Number) and _INT_TOKEN.match(data):
            return int(data)
        raise bad("an integer")
    if kind == "float":
        if isinstance(data, _Number):
            return float(data)
        if type(data) is str and data in ("NaN", "Infinity", "-Infinity"):
            return float(data)
        raise bad("a number")
    if kind == "bool":
        if isinstance(data, bool):
            return data
        raise bad("true or false")
    if kind == "string":
        if type(data) is str:
            return data
        raise bad("a string")
    if kind == "bytes":
        if type(data) is str:
            try:
                return base64.b64decode(data, validate=True)
            except ValueError:
                pass
        raise bad("base64")
    if kind == "datetime":
        if type(data) is str:
            return parse_datetime(data, where)
        raise bad("an RFC 3339 string")
    if kind == "duration":
        if isinstance(data, _Number) and _INT_TOKEN.match(data):
            nanos = int(data)
            if nanos % 1000:
                raise NotRepresentable(f"{where}: {nanos} ns is finer than the microseconds "
                                       f"a datetime.timedelta holds")
            return _dt.timedelta(microseconds=nanos // 1000)
        raise bad("an integer number of nanoseconds")
    if kind == "list":
        if isinstance(data, list):
            return [decode(inner, v, f"{where} element {i}") for i, v in enumerate(data)]
        raise bad("an array")
    if kind == "map":
        if isinstance(data, dict):
            return {k: decode(inner, v, f"{where} key {quote(k)}") for k, v in data.items()}
        raise bad("an object")
    if kind == "optional":
        return None if data is None else decode(inner, data, where)
    if kind == "struct":
        if isinstance(data, dict):
            return _plain(data)
        raise bad("an object")
    raise bad("a value")  # file and dir outputs are not JSON


def _plain(data: Any) -> Any:
    if isinstance(data, _Number):
        return int(data) if _INT_TOKEN.match(data) else float(data)
    if isinstance(data, list):
        return [_plain(v) for v in data]
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    return data


# ---- stored outputs ------------------------------------------------------------------------

def dumps(ty: Type, value: Any, where: str) -> bytes:
    """The stored bytes of a value output: `bytes` as they are, every other type as its
    JSON form in canonical text (no spaces, object keys sorted, UTF-8)."""
    if ty[0] == "bytes":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _bad(where, ty, value, "bytes")
        return bytes(value)
    form = encode(ty, value, where)
    return json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def undumps(ty: Type, data: bytes, where: str) -> Any:
    """The Python value of stored output bytes written by `dumps` (or any writer that
    follows the same form)."""
    if ty[0] == "bytes":
        return data
    try:
        parsed = loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidInput(f"{where}: the stored value is not UTF-8 JSON: {err}") from None
    return decode(ty, parsed, where)


def is_dataclass_type(value: Any) -> bool:
    return isinstance(value, type) and dataclasses.is_dataclass(value)
