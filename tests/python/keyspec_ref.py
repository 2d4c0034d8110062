#!/usr/bin/env python3
"""Independent reference implementation of recall's cache-key spec, version 1.

Written from docs/KEY-SPEC.md alone (no recall source was read).  Section numbers
in comments ("§5.3") refer to that document.

Usage:
    python keyspec_ref.py PATH/key-v1.json [-v]

For each vector: compute key, signature_digest, inputs_digest and per-input digests
and compare them with `expected`, or check that the material is rejected when the
vector has `error`.  Prints one line per failing vector, then `N passed, M failed`.
Exit status 0 only if M == 0.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import stat
import struct
import sys
from fractions import Fraction
from typing import Any

import blake3
import cbor2

SPEC_VERSION = 1

# §7: context strings, ASCII, exactly as shown.
CTX_DIRECTORY = "recall key-spec v1 directory"
CTX_SIGNATURE = "recall key-spec v1 signature"
CTX_VALUE = "recall key-spec v1 value"
CTX_INPUTS = "recall key-spec v1 inputs"
CTX_KEY = "recall key-spec v1 key"

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class SpecError(Exception):
    """Material rejected (§9).  The message names the field and the offending value."""


# ---------------------------------------------------------------------------
# §2 notation
# ---------------------------------------------------------------------------

def DK(context: str, data: bytes) -> bytes:
    """BLAKE3 derive_key mode, 32-byte output (§2)."""
    return blake3.blake3(data, derive_key_context=context).digest()


def H_file(path: str) -> tuple[int, bytes]:
    """Plain BLAKE3 of a file's content and its size (§2 `H`, §6)."""
    h = blake3.blake3()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            h.update(chunk)
    return size, h.digest()


def CBOR(item: Any) -> bytes:
    """Core deterministic CBOR (§5).  selftest() checks cbor2 against §5's table."""
    return cbor2.dumps(item, canonical=True)


# ---------------------------------------------------------------------------
# JSON reading that keeps number token text (§8) and object member order/duplicates
# ---------------------------------------------------------------------------

class Num:
    """A JSON number token, kept as its text (§8 "Numbers are read from their token text")."""

    __slots__ = ("text", "is_int")

    def __init__(self, text: str, is_int: bool):
        self.text = text
        # §8: an integer token has no fraction and no exponent: -?(0|[1-9][0-9]*).
        # Python's json calls parse_int exactly for such tokens.
        self.is_int = is_int

    def __repr__(self) -> str:
        return self.text


class Obj:
    """A JSON object kept as its list of (key, value) pairs, so duplicates can be
    reported with the field that owns them (§8: duplicate fields / keys are errors)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = list(pairs)

    def to_dict(self, what: str) -> dict:
        d = {}
        for k, v in self.pairs:
            if k in d:
                raise SpecError(f"{what}: duplicate key {k!r}")
            d[k] = v
        return d


def _reject_constant(name: str):
    # Python's json accepts the non-JSON literals NaN, Infinity, -Infinity; JSON does not.
    raise SpecError(f"invalid JSON literal {name}")


def json_loads(text: str) -> Any:
    return json.loads(
        text,
        parse_int=lambda s: Num(s, True),
        parse_float=lambda s: Num(s, False),
        parse_constant=_reject_constant,
        object_pairs_hook=Obj,
    )


def plain(x: Any) -> Any:
    """Convert a hooked JSON tree to ordinary Python values (for the vectors' own
    bookkeeping fields, never for material)."""
    if isinstance(x, Obj):
        return {k: plain(v) for k, v in x.to_dict("vectors file").items()}
    if isinstance(x, list):
        return [plain(v) for v in x]
    if isinstance(x, Num):
        return int(x.text) if x.is_int else float(x.text)
    return x


def utf8(s: str, what: str) -> bytes:
    """UTF-8 bytes of a JSON string.  A lone surrogate escape (\\ud800) is not Unicode
    text and cannot be UTF-8; reject it (the spec does not say; see report)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(f"{what}: string is not valid Unicode (lone surrogate)") from None


# ---------------------------------------------------------------------------
# §3 names
# ---------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9._+\-]{1,128}\Z")
# §3: "leading and trailing characters among space, tab, LF, VT, FF, CR are removed".
# Deliberately NOT str.strip() with no argument, which strips all Unicode whitespace.
_CV_TRIM = " \t\n\x0b\x0c\r"


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{what}: must be a string, got {value!r}")
    if value == "":
        raise SpecError(f"{what}: empty")
    # All allowed characters are ASCII, so length in bytes == length in characters.
    if not _NAME_RE.match(value):
        raise SpecError(f"{what}: invalid name {value!r}")
    if value in (".", ".."):
        raise SpecError(f"{what}: invalid name {value!r}")
    return value


def check_cache_version(value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(f"cache_version: must be a string, got {value!r}")
    trimmed = value.strip(_CV_TRIM)
    if trimmed == "":
        raise SpecError(f"cache_version: empty after trimming ({value!r})")
    return check_name(trimmed, "cache_version")


def check_salt(value: Any) -> str:
    # §3: "any UTF-8 string of 1 to 1024 bytes, used as is".
    # GUESS: `"salt": null` is treated as an error (the spec only says salt "may be
    # omitted"); no vector covers it.
    if not isinstance(value, str):
        raise SpecError(f"salt: must be a string, got {value!r}")
    n = len(utf8(value, "salt"))
    if n == 0:
        raise SpecError("salt: empty")
    if n > 1024:
        raise SpecError(f"salt: {n} bytes, more than 1024")
    return value


# ---------------------------------------------------------------------------
# §4.1 types
# ---------------------------------------------------------------------------

SCALARS = ("int", "float", "bool", "string", "bytes", "datetime", "duration",
           "struct", "file", "dir")


def parse_type(text: Any, what: str):
    """Parse a type in the §4.1 grammar.  Returns a tuple tree:
    ("int",), ("list", T), ("map", T), ("optional", T)."""
    if not isinstance(text, str):
        raise SpecError(f"{what}: type must be a string, got {text!r}")
    # §4.1: "A type contains at most 16 `<` characters."
    if text.count("<") > 16:
        raise SpecError(f"{what}: type {text!r} nests deeper than 16")

    pos = 0

    def parse():
        nonlocal pos
        for kw in SCALARS:
            # Longest-match is not an issue: no scalar name is a prefix of a constructor.
            if text.startswith(kw, pos):
                end = pos + len(kw)
                # the scalar must be followed by end or '>'
                if end == len(text) or text[end] == ">":
                    pos = end
                    return (kw,)
        for prefix, tag in (("list<", "list"), ("map<string,", "map"), ("optional<", "optional")):
            if text.startswith(prefix, pos):
                pos += len(prefix)
                inner = parse()
                if pos >= len(text) or text[pos] != ">":
                    raise SpecError(f"{what}: unknown type {text!r}")
                pos += 1
                # §4.1: optional<optional<T>> is invalid.
                if tag == "optional" and inner[0] == "optional":
                    raise SpecError(f"{what}: type {text!r}: optional<optional<T>> is invalid")
                return (tag, inner)
        raise SpecError(f"{what}: unknown type {text!r}")

    t = parse()
    if pos != len(text):
        raise SpecError(f"{what}: unknown type {text!r}")
    return t


# ---------------------------------------------------------------------------
# §4.2 / §8 values -> data items
# ---------------------------------------------------------------------------

def _is_bool(v):
    return v is True or v is False


def conv_int(v: Any, what: str) -> int:
    # §8: "an integer token in signed 64-bit range: 1.0, 1e2 and "1" are rejected".
    if not isinstance(v, Num):
        raise SpecError(f"{what}: {v!r} is not an int")
    if not v.is_int:
        raise SpecError(f"{what}: {v.text} is not an integer token")
    n = int(v.text)
    if not INT64_MIN <= n <= INT64_MAX:
        raise SpecError(f"{what}: {v.text} outside signed 64-bit range")
    return n


def conv_float(v: Any, what: str) -> float:
    # §8: "a number token, or one of the strings "NaN", "Infinity", "-Infinity"".
    if isinstance(v, Num):
        # §8: correctly rounded conversion of the whole token text (Python float(token)).
        # GUESS: a token that overflows (1e400) rounds to +-infinity and is accepted,
        # as IEEE round-to-nearest gives; the spec does not say; no vector covers it.
        return float(v.text)
    if isinstance(v, str):
        if v == "NaN":
            return math.nan
        if v == "Infinity":
            return math.inf
        if v == "-Infinity":
            return -math.inf
    raise SpecError(f"{what}: {v!r} is not a float")


_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")


def conv_bytes(v: Any, what: str) -> bytes:
    # §8: "standard base64 (RFC 4648 section 4) with padding".
    if not isinstance(v, str):
        raise SpecError(f"{what}: {v!r} is not a base64 string")
    if not _B64_RE.match(v):
        raise SpecError(f"{what}: {v!r} is not padded standard base64")
    data = base64.b64decode(v, validate=True)
    # GUESS: non-zero padding bits ("AP9=" instead of "AP8=") are rejected, so that one
    # byte string has one spelling.  RFC 4648 §3.5 lets decoders choose; the spec does
    # not say; no vector covers it.
    if base64.b64encode(data).decode("ascii") != v:
        raise SpecError(f"{what}: {v!r} is not canonical base64 (non-zero pad bits)")
    return data


_DT_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z", re.ASCII)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        return 29 if leap else 28
    return 30 if m in (4, 6, 9, 11) else 31


def conv_datetime(v: Any, what: str) -> list:
    # §8 "Datetime strings" and §4.2 "datetime": [seconds (floor), nanos 0..999999999].
    if not isinstance(v, str):
        raise SpecError(f"{what}: {v!r} is not a datetime string")
    m = _DT_RE.match(v)
    if not m:
        raise SpecError(f"{what}: {v!r} is not an RFC 3339 date-time with offset")
    y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    if not 1 <= mo <= 12 or not 1 <= d <= _days_in_month(y, mo):
        raise SpecError(f"{what}: {v!r}: invalid date")
    if hh > 23 or mi > 59:
        raise SpecError(f"{what}: {v!r}: invalid time")
    if ss == 60:
        raise SpecError(f"{what}: {v!r}: leap second rejected")
    if ss > 59:
        raise SpecError(f"{what}: {v!r}: invalid time")
    if m.group(8):
        off = 0
    else:
        oh, om = int(m.group(10)), int(m.group(11))
        # GUESS: offset hours 00-23 and minutes 00-59 (RFC 3339 time-numoffset);
        # "-00:00" is accepted as UTC.  The spec does not bound the offset.
        if oh > 23 or om > 59:
            raise SpecError(f"{what}: {v!r}: invalid offset")
        off = (oh * 3600 + om * 60) * (1 if m.group(9) == "+" else -1)
    # Offset applied then forgotten (§4.2).  The fraction is non-negative and offsets
    # are whole minutes, so the whole seconds are already the floor.
    secs = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return [secs, nanos]


_UNIT_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9,
            "ms": 10**6, "us": 10**3, "ns": 1}
_SHORT_ORDER = ["h", "m", "s", "ms", "us", "ns"]
_SHORT_PART_RE = re.compile(r"(\d+)(?:\.(\d+))?(h|ms|us|ns|m|s)", re.ASCII)
_ISO_RE = re.compile(r"(-?)PT(?:(\d+)(?:\.(\d+))?H)?(?:(\d+)(?:\.(\d+))?M)?(?:(\d+)(?:\.(\d+))?S)?\Z",
                     re.ASCII)


def _parts_to_ns(parts, v, what) -> int:
    """parts: list of (int_text, frac_text_or_None, unit) in written order."""
    total = Fraction(0)
    for i, (ip, fp, unit) in enumerate(parts):
        # §8.1: "Fractions are allowed on the last (smallest) unit only."
        if fp is not None and i != len(parts) - 1:
            raise SpecError(f"{what}: {v!r}: fraction allowed on the last unit only")
        num = Fraction(int(ip))
        if fp is not None:
            num += Fraction(int(fp), 10 ** len(fp))
        total += num * _UNIT_NS[unit]
    # §8.1: "a fraction finer than a nanosecond is an error".
    # GUESS: judged on the exact value, so "1.0000000000s" (exact) is accepted.
    if total.denominator != 1:
        raise SpecError(f"{what}: {v!r}: sub-nanosecond fraction")
    return int(total)


def conv_duration(v: Any, what: str) -> int:
    # §8: "an integer number of nanoseconds, or a string (section 8.1)".
    if isinstance(v, Num):
        if not v.is_int:
            raise SpecError(f"{what}: {v.text} is not an integer token")
        ns = int(v.text)
    elif isinstance(v, str):
        m = _ISO_RE.match(v)
        if m and any(m.group(i) is not None for i in (2, 4, 6)):
            parts = [(m.group(i), m.group(i + 1), u)
                     for i, u in ((2, "h"), (4, "m"), (6, "s")) if m.group(i) is not None]
            ns = _parts_to_ns(parts, v, what)
            neg = m.group(1) == "-"
        else:
            # Short form: optional '-', then one or more <number><unit>.
            # GUESS: units must appear in strictly decreasing order, each at most once
            # (the spec does not say; "30m1h" / "1s1s" are rejected here).
            s = v[1:] if v.startswith("-") else v
            neg = v.startswith("-")
            parts, pos, last = [], 0, -1
            if not s:
                raise SpecError(f"{what}: {v!r} is not a duration")
            while pos < len(s):
                pm = _SHORT_PART_RE.match(s, pos)
                if not pm:
                    raise SpecError(f"{what}: {v!r} is not a duration")
                rank = _SHORT_ORDER.index(pm.group(3))
                if rank <= last:
                    raise SpecError(f"{what}: {v!r}: units out of order or repeated")
                last = rank
                parts.append((pm.group(1), pm.group(2), pm.group(3)))
                pos = pm.end()
            ns = _parts_to_ns(parts, v, what)
        if neg:
            ns = -ns
    else:
        raise SpecError(f"{what}: {v!r} is not a duration")
    # §4.2: "integer: total nanoseconds, in signed 64-bit range".
    if not INT64_MIN <= ns <= INT64_MAX:
        raise SpecError(f"{what}: {v!r} outside signed 64-bit nanoseconds")
    return ns


def conv_struct_value(v: Any, what: str) -> Any:
    """§4.3 table: JSON -> data item, recursively."""
    if isinstance(v, Obj):
        return {k: conv_struct_value(x, f"{what}.{k}")
                for k, x in _str_keys(v.to_dict(what), what).items()}
    if isinstance(v, list):
        return [conv_struct_value(x, f"{what}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, str):
        utf8(v, what)
        return v
    if isinstance(v, Num):
        # §4.3/§8: an integer token with magnitude > 2^53 is rejected; everything else
        # becomes a binary64 (so "-0" is -0.0, and 2^53 itself is accepted).
        if v.is_int and abs(int(v.text)) > 2**53:
            raise SpecError(f"{what}: integer {v.text} beyond 2^53 in struct")
        return float(v.text)
    if _is_bool(v) or v is None:
        return v
    raise SpecError(f"{what}: {v!r} is not JSON")


def _str_keys(d: dict, what: str) -> dict:
    for k in d:
        utf8(k, f"{what} key")
    return d


def conv_file(v: Any, what: str, base: str) -> list:
    # §6 file: [size, h'H(content)']; links followed; must be a regular file.
    if not isinstance(v, str):
        raise SpecError(f"{what}: {v!r} is not a path string")
    path = os.path.join(base, v)
    try:
        st = os.stat(path)  # follows links
    except FileNotFoundError:
        raise SpecError(f"{what}: file {v!r} does not exist (or is a dangling link)") from None
    except OSError as e:
        raise SpecError(f"{what}: cannot stat {v!r}: {e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError(f"{what}: {v!r} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"{what}: {v!r} is not a regular file")
    try:
        size, digest = H_file(path)
    except OSError as e:
        raise SpecError(f"{what}: cannot read {v!r}: {e}") from None
    return [size, digest]


def tree_digest(root: str, what: str) -> bytes:
    """§6 dir: entries [path, size, h'H'] for every regular file below root, following
    every link; sorted by UTF-8 bytes of the whole path; DK(directory, CBOR(entries))."""
    entries: list[tuple[bytes, list]] = []

    def walk(dirpath: bytes, rel: list[bytes], ancestors: set):
        try:
            names = os.listdir(dirpath)
        except OSError as e:
            raise SpecError(f"{what}: cannot read directory {dirpath!r}: {e}") from None
        for name in names:
            try:
                name.decode("utf-8")
            except UnicodeDecodeError:
                raise SpecError(f"{what}: name {name!r} is not valid UTF-8") from None
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)  # follows links
            except FileNotFoundError:
                raise SpecError(f"{what}: dangling link {full!r}") from None
            except OSError as e:  # ELOOP for self-referential links, EACCES, ...
                raise SpecError(f"{what}: cannot stat {full!r}: {e}") from None
            relpath = rel + [name]
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                # A link cycle = reaching a directory that is one of our own ancestors.
                if ident in ancestors:
                    raise SpecError(f"{what}: link cycle at {full!r}")
                walk(full, relpath, ancestors | {ident})
            elif stat.S_ISREG(st.st_mode):
                try:
                    size, digest = H_file(full)
                except OSError as e:
                    raise SpecError(f"{what}: cannot read {full!r}: {e}") from None
                p = b"/".join(relpath)
                entries.append((p, [p.decode("utf-8"), size, digest]))
            else:
                raise SpecError(f"{what}: special file {full!r}")

    st = os.stat(root)
    walk(os.fsencode(root), [], {(st.st_dev, st.st_ino)})
    entries.sort(key=lambda e: e[0])  # bytewise on the UTF-8 path, whole paths
    return DK(CTX_DIRECTORY, CBOR([e[1] for e in entries]))


def conv_dir(v: Any, what: str, base: str) -> bytes:
    if not isinstance(v, str):
        raise SpecError(f"{what}: {v!r} is not a path string")
    path = os.path.join(base, v)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SpecError(f"{what}: directory {v!r} does not exist") from None
    except OSError as e:
        raise SpecError(f"{what}: cannot stat {v!r}: {e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SpecError(f"{what}: {v!r} is not a directory")
    return tree_digest(path, what)


def enc(t, v: Any, what: str, base: str) -> Any:
    """§4.2: check v (a hooked JSON value, §8 forms) against type t; return enc(value)."""
    kind = t[0]
    if kind == "int":
        return conv_int(v, what)
    if kind == "float":
        return conv_float(v, what)
    if kind == "bool":
        if not _is_bool(v):
            raise SpecError(f"{what}: {v!r} is not a bool")
        return v
    if kind == "string":
        if not isinstance(v, str):
            raise SpecError(f"{what}: {v!r} is not a string")
        utf8(v, what)
        return v  # §4.2: not normalised
    if kind == "bytes":
        return conv_bytes(v, what)
    if kind == "datetime":
        return conv_datetime(v, what)
    if kind == "duration":
        return conv_duration(v, what)
    if kind == "list":
        if not isinstance(v, list):
            raise SpecError(f"{what}: {v!r} is not an array")
        return [enc(t[1], x, f"{what}[{i}]", base) for i, x in enumerate(v)]
    if kind == "map":
        if not isinstance(v, Obj):
            raise SpecError(f"{what}: {v!r} is not an object")
        d = _str_keys(v.to_dict(what), what)  # duplicate keys -> error (§8)
        return {k: enc(t[1], x, f"{what}[{k!r}]", base) for k, x in d.items()}
    if kind == "optional":
        return None if v is None else enc(t[1], v, what, base)
    if kind == "struct":
        # §4.3: "The top level of a struct MUST be an object."
        if not isinstance(v, Obj):
            raise SpecError(f"{what}: struct must be a JSON object, got {v!r}")
        return conv_struct_value(v, what)
    if kind == "file":
        return conv_file(v, what, base)
    if kind == "dir":
        return conv_dir(v, what, base)
    raise AssertionError(kind)


# ---------------------------------------------------------------------------
# §8 material, §7 derivation
# ---------------------------------------------------------------------------

MATERIAL_FIELDS = {"project", "domain", "task", "cache_version", "inputs", "outputs", "salt"}
INPUT_FIELDS = {"name", "type", "value", "hash", "ignore"}
OUTPUT_FIELDS = {"name", "type"}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")


def _fields(obj: Any, allowed: set, required: set, what: str) -> dict:
    if not isinstance(obj, Obj):
        raise SpecError(f"{what}: must be an object, got {obj!r}")
    d = obj.to_dict(what)  # duplicate fields are errors (§8)
    for k in d:
        if k not in allowed:
            # §8 "Unknown fields ... are errors".  GUESS: applies to input and output
            # objects too, not only the top level.
            raise SpecError(f"{what}: unknown field {k!r}")
    for k in sorted(required):
        if k not in d:
            raise SpecError(f"{what}: missing field {k!r}")
    return d


def derive(material: Any, base: str) -> dict:
    """Validate material (§3, §4, §8, §9) and derive the result (§7)."""
    m = _fields(material, MATERIAL_FIELDS, {"project", "domain", "task", "cache_version"},
                "material")
    project = check_name(m["project"], "project")
    domain = check_name(m["domain"], "domain")
    task = check_name(m["task"], "task")
    cache_version = check_cache_version(m["cache_version"])
    # Section 8: null is the same as leaving salt out.
    salt = check_salt(m["salt"]) if m.get("salt") is not None else None

    inputs = m.get("inputs", [])
    outputs = m.get("outputs", [])
    if not isinstance(inputs, list):
        raise SpecError(f"inputs: must be an array, got {inputs!r}")
    if not isinstance(outputs, list):
        raise SpecError(f"outputs: must be an array, got {outputs!r}")

    # Outputs: names unique, types valid.
    out_types: dict[str, str] = {}
    for i, o in enumerate(outputs):
        od = _fields(o, OUTPUT_FIELDS, OUTPUT_FIELDS, f"outputs[{i}]")
        name = check_name(od["name"], f"output name (outputs[{i}])")
        if name in out_types:
            raise SpecError(f"duplicate output {name!r}")
        parse_type(od["type"], f"output {name}")
        out_types[name] = od["type"]  # canonical text = the (only accepted) spelling

    # Inputs: first validate declarations, then values.
    decls = []
    in_types: dict[str, str] = {}
    for i, o in enumerate(inputs):
        idd = _fields(o, INPUT_FIELDS, {"name", "type"}, f"inputs[{i}]")
        name = check_name(idd["name"], f"input name (inputs[{i}])")
        if name in in_types:
            raise SpecError(f"duplicate input {name!r}")
        t = parse_type(idd["type"], f"input {name}")
        in_types[name] = idd["type"]
        ignore = idd.get("ignore", False)
        if not _is_bool(ignore):
            # GUESS: "ignore" must be a JSON boolean; false means "not ignored".
            raise SpecError(f"input {name}: ignore must be true or false, got {ignore!r}")
        has_hash = "hash" in idd
        if ignore and has_hash:
            # §7.2: an ignored input MUST NOT also have a supplied hash.
            raise SpecError(f"input {name}: both ignored and hashed")
        digest = None
        if has_hash:
            h = idd["hash"]
            if not isinstance(h, str) or not _HEX64.match(h):
                raise SpecError(f"input {name}: hash {h!r} is not 64 hex characters")
            digest = bytes.fromhex(h)  # §2: readers accept upper case
        if not ignore and not has_hash and "value" not in idd:
            raise SpecError(f"input {name}: missing value")
        decls.append((name, t, ignore, digest, idd.get("value")))

    # §7.1 signature: every input (ignored ones too) and every output.
    signature = DK(CTX_SIGNATURE, CBOR({"task": task, "inputs": in_types, "outputs": out_types}))

    # §7.2 value digests.
    value_digests: dict[str, bytes | None] = {}
    for name, t, ignore, digest, value in decls:
        if ignore:
            value_digests[name] = None  # value not read (§7.2)
        elif digest is not None:
            value_digests[name] = digest  # used as given; value not read (§7.2, §8)
        else:
            item = enc(t, value, f"input {name}", base)
            value_digests[name] = DK(CTX_VALUE, CBOR(item))

    # §7.3 inputs digest over the non-ignored inputs.
    inputs_digest = DK(CTX_INPUTS, CBOR({n: d for n, d in value_digests.items() if d is not None}))

    # §7.4 key.
    key = DK(CTX_KEY, CBOR({
        "project": project,
        "domain": domain,
        "cache_version": cache_version,
        "signature": signature,
        "inputs": inputs_digest,
        "salt": salt,
    }))
    return {
        "key": key.hex(),
        "signature_digest": signature.hex(),
        "inputs_digest": inputs_digest.hex(),
        "input_digests": {n: (d.hex() if d is not None else None)
                          for n, d in value_digests.items()},
    }


# ---------------------------------------------------------------------------
# Self-test of the CBOR encoder against §5 (and an independent float encoder)
# ---------------------------------------------------------------------------

def _shortest_float_ref(x: float) -> bytes:
    """Independent §5.3 float encoder, used only to cross-check cbor2."""
    if math.isnan(x):
        return bytes.fromhex("f97e00")
    for fmt, head in (("e", 0xF9), ("f", 0xFA)):
        try:
            packed = struct.pack(">" + fmt, x)
        except OverflowError:
            continue
        if struct.unpack(">" + fmt, packed)[0] == x and \
                math.copysign(1, struct.unpack(">" + fmt, packed)[0]) == math.copysign(1, x):
            return bytes([head]) + packed
    return b"\xfb" + struct.pack(">d", x)


def selftest() -> None:
    table = [  # §5.3 table, verbatim
        (0.0, "f90000"), (-0.0, "f98000"), (1.0, "f93c00"), (1.5, "f93e00"),
        (100000.0, "fa47c35000"), (0.1, "fb3fb999999999999a"),
        (math.inf, "f97c00"), (-math.inf, "f9fc00"), (math.nan, "f97e00"),
        (2.0 ** -24, "f90001"), (3.0, "f94200"),
    ]
    for v, hx in table:
        assert CBOR(v).hex() == hx, (v, CBOR(v).hex(), hx)
    # "NaN (any payload, any sign)" -> f9 7e 00
    for bits in ("7ff8000000000000", "fff8000000000000", "7ff0000000000001",
                 "fff0000000000001", "7ff8dead00000000", "7fffffffffffffff"):
        nan = struct.unpack(">d", bytes.fromhex(bits))[0]
        assert CBOR(nan).hex() == "f97e00", bits
    # Cross-check floats against the independent encoder: edges of half/single.
    probes = [65504.0, 65505.0, 65520.0, 2.0 ** -14, 2.0 ** -15, 3 * 2.0 ** -24, 2.0 ** -25,
              2.0 ** -126, 2.0 ** -149, 2.0 ** -150, 3.4028234663852886e38, 1e39, 5e-324,
              1.0 + 2.0 ** -10, 1.0 + 2.0 ** -11, 1.0 + 2.0 ** -23, 1.0 + 2.0 ** -24,
              16777216.0, 16777217.0, 1e300, -2.5, 0.5, 1 / 3]
    for p in probes:
        for x in (p, -p):
            assert CBOR(x) == _shortest_float_ref(x), (x, CBOR(x).hex(), _shortest_float_ref(x).hex())
    # §5.2 integers: shortest argument; negative n is major type 1 with -1-n.
    ints = [(0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"),
            (65535, "19ffff"), (65536, "1a00010000"), (2**32 - 1, "1affffffff"),
            (2**32, "1b0000000100000000"), (INT64_MAX, "1b7fffffffffffffff"),
            (-1, "20"), (-24, "37"), (-25, "3818"), (-256, "38ff"), (-257, "390100"),
            (INT64_MIN, "3b7fffffffffffffff")]
    for v, hx in ints:
        assert CBOR(v).hex() == hx, (v, CBOR(v).hex(), hx)
    # Other simple items and strings.
    assert CBOR(False).hex() == "f4" and CBOR(True).hex() == "f5" and CBOR(None).hex() == "f6"
    assert CBOR(b"").hex() == "40" and CBOR(b"\x00\xff").hex() == "4200ff"
    assert CBOR("").hex() == "60" and CBOR("é").hex() == "62c3a9"
    assert CBOR("a" * 24).hex() == "7818" + "61" * 24
    assert CBOR([]).hex() == "80" and CBOR([1, [2]]).hex() == "82018102"
    assert CBOR(list(range(24))).hex().startswith("9818")
    # §5.4 map order: by encoded key bytes (length first); example "b","aa","ab","é".
    assert CBOR({"é": 4, "ab": 3, "b": 1, "aa": 2}).hex() == "a4616201626161026261620362c3a904"
    assert CBOR({}).hex() == "a0"
    assert CBOR({"a.txt": 0, "a/b": 1}).hex() == "a263612f620165612e74787400"
    # §6 example ordering for dir entries is bytewise on paths: "a.txt" < "a/b".
    assert sorted([b"a/b", b"a.txt"]) == [b"a.txt", b"a/b"]
    # §2 DK matches blake3 derive_key (sanity: differs from plain hash).
    assert DK("x", b"") != blake3.blake3(b"").digest()
    # datetime example from §4.2
    assert conv_datetime("1969-12-31T23:59:59.5Z", "t") == [-1, 500000000]
    assert conv_datetime("2024-01-01T01:00:00+01:00", "t") == conv_datetime("2024-01-01T00:00:00Z", "t")
    assert conv_datetime("0000-01-01T00:00:00Z", "t")[0] == -62167219200
    assert conv_datetime("9999-12-31T23:59:59Z", "t")[0] == 253402300799
    assert conv_duration("PT1H0.25S", "d") == 3600_250_000_000
    assert conv_duration("250ms", "d") == 250_000_000 and conv_duration("-2s", "d") == -2 * 10**9


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------

def run(vectors_path: str, verbose: bool = False) -> int:
    base = os.path.dirname(os.path.abspath(vectors_path))
    with open(vectors_path, encoding="utf-8") as f:
        doc = json_loads(f.read())
    top = doc.to_dict("vectors file")
    assert plain(top["spec_version"]) == SPEC_VERSION, "vectors file is not spec version 1"
    passed = failed = 0
    for vobj in top["vectors"]:
        v = vobj.to_dict("vector")
        name = v["name"]
        try:
            if "material_text" in v:
                material = json_loads(v["material_text"])
            else:
                material = v["material"]
            result, err = derive(material, base), None
        except SpecError as e:
            result, err = None, str(e)
        if "error" in v:
            if err is None:
                failed += 1
                print(f"FAIL {name}: expected rejection ({v['error']!r}) but got key {result['key']}")
            else:
                passed += 1
                if verbose:
                    print(f"ok   {name}: rejected: {err}   [vector: {v['error']}]")
            continue
        expected = plain(v["expected"])
        if err is not None:
            failed += 1
            print(f"FAIL {name}: rejected: {err}")
            continue
        diffs = [k for k in ("key", "signature_digest", "inputs_digest", "input_digests")
                 if result[k] != expected[k]]
        if diffs:
            failed += 1
            detail = "; ".join(f"{k}: got {result[k]} want {expected[k]}" for k in diffs)
            print(f"FAIL {name}: {detail}")
        else:
            passed += 1
            if verbose:
                print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "-v"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    selftest()
    return run(args[0], verbose="-v" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
