"""recall.key reproduces the frozen vectors (tests/vectors/key-v1.json) from Python values.

Each vector's key material is turned into a recall.key call with native Python values
(int, float, str, bytes, datetime, timedelta, list, dict, pathlib.Path, recall.Hash); a
value whose type can be inferred is passed bare, others as recall.Typed. Vectors that Python
values cannot express are listed in NOT_EXPRESSIBLE with the reason; every other vector must
match (or, for an error vector, be rejected by recall).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pathlib
import re
from fractions import Fraction
from typing import Any

import pytest

import recall
from recall import _types

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors"
DOCUMENT = _types.loads((VECTORS / "key-v1.json").read_text(encoding="utf-8"))

NOT_EXPRESSIBLE = {
    "datetime-nanos": "a Python datetime holds microseconds, not nanoseconds",
    "duplicate-input": "a dict cannot hold one input name twice",
    "duplicate-output": "a dict cannot hold one output name twice",
    "map-duplicate-key": "a dict cannot hold one key twice (raw JSON text vector)",
    "unknown-field": "recall.key has no free-form fields (raw JSON text vector)",
}

_SHORT = re.compile(r"(-)?((?:\d+(?:\.\d+)?(?:h|ms|us|ns|m|s))+)\Z")
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)")
_ISO = re.compile(r"(-)?PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?\Z")
_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


class NotPython(Exception):
    """The value has no exact Python form."""


def duration(data: Any) -> Any:
    """A duration's JSON form as a timedelta (or int nanoseconds when finer than 1 µs)."""
    if isinstance(data, _types._Number):
        nanos = int(data)
    else:
        m = _SHORT.match(data)
        if m:
            total = sum(Fraction(n) * _NS[u] for n, u in _PART.findall(m.group(2)))
            sign = -1 if m.group(1) else 1
        else:
            m = _ISO.match(data)
            if not m:
                raise NotPython(data)
            total = sum(Fraction(part) * _NS[unit] for part, unit in
                        zip(m.groups()[1:], ("h", "m", "s")) if part)
            sign = -1 if m.group(1) else 1
        if total.denominator != 1:
            raise NotPython(data)
        nanos = sign * int(total)
    if nanos % 1000 == 0:
        return dt.timedelta(microseconds=nanos // 1000)
    return nanos  # an int is a duration in nanoseconds


def python_value(ty: _types.Type, data: Any) -> Any:
    """The native Python value of a JSON form (raises NotPython or recall.InvalidInput)."""
    kind, inner = ty
    if kind in ("file", "dir"):
        return VECTORS / data
    if kind == "duration":
        return duration(data)
    if kind == "list":
        return [python_value(inner, v) for v in data]
    if kind == "map":
        return {k: python_value(inner, v) for k, v in data.items()}
    if kind == "optional":
        return None if data is None else python_value(inner, data)
    return _types.decode(ty, data, "vector")


def plain(data: Any) -> Any:
    """The JSON data as Python's json module would give it (for error vectors)."""
    return json.loads(json.dumps(data))


def call_of(material: dict, strict: bool) -> dict:
    """recall.key's arguments for a vector's key material."""
    inputs, ignore = {}, []
    for entry in material.get("inputs", []):
        name, text = entry["name"], entry["type"]
        if entry.get("ignore"):
            ignore.append(name)
        if "hash" in entry:
            inputs[name] = recall.Hash(entry["hash"], type=text)
            continue
        if "value" not in entry:
            inputs[name] = recall.Typed(text, None)
            continue
        try:
            ty = _types.parse_type(text, f"input {name}")
            value = python_value(ty, entry["value"])
        except (NotPython, recall.InvalidInput, KeyError, TypeError):
            if strict:
                raise
            inputs[name] = recall.Typed(text, plain(entry["value"]))
            continue
        try:
            inferred = _types.infer(value, "x")
        except recall.InvalidInput:
            inferred = None
        inputs[name] = value if inferred == ty else recall.Typed(text, value)
    return {
        "project": material["project"], "domain": material["domain"],
        "task": material["task"], "cache_version": material["cache_version"],
        "inputs": inputs,
        "outputs": {o["name"]: o["type"] for o in material.get("outputs", [])},
        "ignore": ignore, "salt": material.get("salt"),
    }


def by_kind(kind: str) -> list:
    return [pytest.param(v, id=v["name"]) for v in DOCUMENT["vectors"] if kind in v
            and v["name"] not in NOT_EXPRESSIBLE]


@pytest.mark.parametrize("vector", by_kind("expected"))
def test_expected_vectors(vector: dict) -> None:
    key = recall.key(**call_of(vector["material"], strict=True))
    expected = vector["expected"]
    assert key.hex == expected["key"]
    assert key.signature_digest == expected["signature_digest"]
    assert key.inputs_digest == expected["inputs_digest"]
    assert dict(key.input_digests) == expected["input_digests"]


@pytest.mark.parametrize("vector", by_kind("error"))
def test_error_vectors_are_rejected(vector: dict) -> None:
    assert "material" in vector, "raw-text vectors are listed in NOT_EXPRESSIBLE"
    with pytest.raises(recall.Error):
        recall.key(**call_of(vector["material"], strict=False))


def test_only_the_listed_vectors_are_left_out() -> None:
    names = {v["name"] for v in DOCUMENT["vectors"]}
    assert set(NOT_EXPRESSIBLE) <= names
    # Everything else ran above: 79 vectors in key-v1.json, 5 not expressible.
    assert len(names) - len(NOT_EXPRESSIBLE) == 74


def test_inferred_and_declared_types_give_the_frozen_key() -> None:
    """The baseline vector through plain Python values, no recall.Typed."""
    vector = next(v for v in DOCUMENT["vectors"] if v["name"] == "baseline-n-3")
    material = vector["material"]
    call = call_of(material, strict=True)
    assert not any(isinstance(v, recall.Typed) for v in call["inputs"].values())
    assert recall.key(**call).hex == vector["expected"]["key"]


def test_bytes_vector_is_bytes() -> None:
    vector = next(v for v in DOCUMENT["vectors"] if v["name"] == "bytes")
    call = call_of(vector["material"], strict=True)
    value = next(iter(call["inputs"].values()))
    assert isinstance(value, bytes)
    assert base64.b64encode(value).decode() == vector["material"]["inputs"][0]["value"]
