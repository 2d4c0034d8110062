"""recall.key: Python values to KEY-SPEC types, the same keys as `recall key`, and bad input
named in the exception."""

from __future__ import annotations

import datetime as dt
import json
import math
import pathlib
import subprocess
from typing import Any

import pytest

import recall


def cli_key(recall_bin: pathlib.Path, *args: str, cwd: Any = None) -> str:
    out = subprocess.run([str(recall_bin), "key", "--project", "p", "--domain", "d",
                          "--task", "t", "--cache-version", "1", *args],
                         check=True, capture_output=True, text=True, cwd=cwd)
    return out.stdout.strip()


def py_key(**kwargs: Any) -> str:
    return recall.key("p", "d", "t", "1", **kwargs).hex


def test_python_values_give_the_cli_keys(recall_bin: pathlib.Path,
                                         tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x.txt").write_text("x")
    when = dt.datetime(2024, 1, 1, 1, 0, 0, 250000,
                       tzinfo=dt.timezone(dt.timedelta(hours=1)))
    python = py_key(
        inputs={"n": 3, "x": -0.0, "nan": math.nan, "flag": True, "s": "é", "b": b"\x00\xff",
                "when": when, "wait": dt.timedelta(minutes=90), "tags": ["a", "b"],
                "weights": {"a": 1.5, "b": 2}, "maybe": [1, None], "data": data,
                "tree": tree, "cfg": recall.Typed("struct", {"lr": 0.1, "layers": [64, 64]})},
        outputs={"model": pathlib.Path, "plots": recall.Dir, "o0": int,
                 "names": "list<string>"},
        ignore=["flag"], salt="team-a")
    cli = cli_key(
        recall_bin,
        "--input", "n:int=3", "--input", "x:float=-0.0", "--input", "nan:float=NaN",
        "--input", "flag:bool=false", "--input", "s:string=é", "--input", "b:bytes=AP8=",
        "--input", "when:datetime=2024-01-01T00:00:00.25Z", "--input", "wait:duration=1h30m",
        "--input", 'tags:list<string>=["a","b"]',
        "--input", 'weights:map<string,float>={"b":2,"a":1.5}',
        "--input", "maybe:list<optional<int>>=[1,null]",
        "--input", f"data:file=@{data}", "--input", f"tree:dir=@{tree}",
        "--input", 'cfg:struct={"layers":[64,64],"lr":0.1}',
        "--output", "model:file", "--output", "plots:dir", "--output", "o0:int",
        "--output", "names:list<string>", "--ignore-input", "flag", "--salt", "team-a")
    assert python == cli


def test_key_object() -> None:
    key = recall.key("flytesnacks", "development", "wf.square", " 1.0\n", inputs={"n": 3},
                     outputs={"o0": int})
    assert len(key.hex) == 64 and str(key) == key.hex
    assert key.cache_version == "1.0" and key.task == "wf.square"
    assert key.outputs == [("o0", "int")]
    result = json.loads(key.json())
    assert result["key"] == key.hex and result["inputs"]["n"]["source"] == "value"
    material = json.loads(key.material_json())
    assert material["inputs"] == [{"name": "n", "type": "int", "value": 3}]
    same = recall.key("flytesnacks", "development", "wf.square", "1.0", inputs={"n": 3},
                      outputs={"o0": "int"})
    assert same == key and hash(same) == hash(key) and {key: 1}[same] == 1


def test_material_json_rederives_with_the_cli(recall_bin: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    data = tmp_path / "in.txt"
    data.write_text("hello")
    key = recall.key("p", "d", "t", "1", inputs={"data": data, "n": 2.5})
    spec = tmp_path / "spec.json"
    spec.write_text(key.material_json())
    out = subprocess.run([str(recall_bin), "key", "--spec", str(spec)], check=True,
                         capture_output=True, text=True)
    assert out.stdout.strip() == key.hex


def test_hash_stands_for_the_value() -> None:
    digest = "ab" * 32
    assert py_key(inputs={"big": recall.Hash(digest)}) == py_key(
        inputs={"big": recall.Hash(digest.upper(), type="file")})
    assert py_key(inputs={"big": recall.Hash(digest)}) != py_key(
        inputs={"big": recall.Hash(digest, type="dir")})


def test_int_and_float_differ_and_bool_is_not_int() -> None:
    assert py_key(inputs={"n": 1}) != py_key(inputs={"n": 1.0})
    assert py_key(inputs={"n": True}) != py_key(inputs={"n": 1})
    assert py_key(inputs={"n": recall.Typed("float", 1)}) == py_key(inputs={"n": 1.0})
    assert py_key(inputs={"x": 0.0}) != py_key(inputs={"x": -0.0})


@pytest.mark.parametrize("value, needle", [
    (object(), 'input "x": a value of Python type builtins.object has no KEY-SPEC type'),
    ({1, 2}, "builtins.set has no KEY-SPEC type"),
    (1 + 2j, "builtins.complex has no KEY-SPEC type"),
    (None, 'input "x": None has no type of its own'),
    ([], 'input "x": cannot tell the element type of an empty list'),
    ([1, "a"], 'input "x": the list mixes values of types int, string'),
    ({1: "a"}, 'input "x": a dict needs str keys, not int 1'),
    (dt.datetime(2024, 1, 1), "naive datetime names no instant"),
    (recall.Typed("int", 1.5), 'input "x" of type int: cannot use float 1.5: expected an int'),
    (recall.Typed("int", True), "cannot use bool True"),
    (recall.Typed("list<int>", [1, "a"]), 'input "x" element 1 of type int'),
])
def test_unsupported_values_raise_type_error_naming_input_and_type(value: Any,
                                                                    needle: str) -> None:
    with pytest.raises(TypeError) as caught:
        py_key(inputs={"x": value})
    assert isinstance(caught.value, recall.InvalidType)
    assert isinstance(caught.value, recall.InvalidInput) and isinstance(caught.value,
                                                                        ValueError)
    assert needle in str(caught.value)


@pytest.mark.parametrize("call, needle", [
    (lambda: recall.key("a/b", "d", "t", "1"), 'invalid project "a/b"'),
    (lambda: recall.key("p", "..", "t", "1"), 'invalid domain ".."'),
    (lambda: recall.key("p", "d", "", "1"), 'invalid task ""'),
    (lambda: recall.key("p", "d", "t", "   "), "invalid cache_version"),
    (lambda: py_key(inputs={"a b": 1}), 'invalid input name "a b"'),
    (lambda: py_key(outputs={"o/0": int}), 'invalid output name "o/0"'),
    (lambda: py_key(outputs={"o0": "integer"}), 'invalid type "integer" for output "o0"'),
    (lambda: py_key(inputs={"x": recall.Typed("optional<optional<int>>", 1)}),
     'invalid type "optional<optional<int>>" for input "x"'),
    (lambda: py_key(inputs={"n": 1}, ignore=["m"]),
     'ignored input names "m", which is not a declared input'),
    (lambda: py_key(inputs={"n": recall.Hash("ab" * 32)}, ignore=["n"]),
     'input "n" is both ignored and given a hash'),
    (lambda: py_key(inputs={"n": recall.Hash("xyz")}), 'input hash for "n": "xyz" is not 64'),
    (lambda: py_key(inputs={"n": 2**63}), 'input "n" of type int: bad value 9223372036854775808'),
    (lambda: py_key(salt=""), "invalid salt"),
    (lambda: py_key(inputs={"s": recall.Typed("struct", {"n": 2**60})}), 'input "s"'),
])
def test_bad_input_raises_value_error_with_the_cli_message(call: Any, needle: str) -> None:
    with pytest.raises(ValueError) as caught:
        call()
    assert isinstance(caught.value, recall.InvalidInput)
    assert needle in str(caught.value)


def test_missing_and_wrong_kind_paths_name_the_input_and_path(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(recall.InvalidInput) as caught:
        py_key(inputs={"data": missing})
    assert 'input "data"' in str(caught.value) and str(missing) in str(caught.value)
    with pytest.raises(recall.InvalidInput) as caught:
        py_key(inputs={"data": recall.Typed("file", tmp_path)})
    assert 'input "data"' in str(caught.value) and str(tmp_path) in str(caught.value)


def test_paths_are_file_or_dir_by_content(tmp_path: pathlib.Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("1")
    (tmp_path / "f").write_text("1")
    key = recall.key("p", "d", "t", "1", inputs={"d": tmp_path / "d", "f": tmp_path / "f"})
    types = {name: entry["type"] for name, entry in json.loads(key.json())["inputs"].items()}
    assert types == {"d": "dir", "f": "file"}
    before = key.hex
    (tmp_path / "d" / "a").write_text("2")
    assert recall.key("p", "d", "t", "1",
                      inputs={"d": tmp_path / "d", "f": tmp_path / "f"}).hex != before


def test_ignored_input_values_are_not_read() -> None:
    a = py_key(inputs={"n": 1, "log": "x"}, ignore=["log"])
    assert a == py_key(inputs={"n": 1, "log": "y"}, ignore=["log"])
    assert a != py_key(inputs={"n": 1, "log": "x"})
    # An ignored value of no KEY-SPEC type is still fine: its type text is "string".
    assert a == py_key(inputs={"n": 1, "log": object()}, ignore=["log"])


def test_non_str_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError, match="project: expected a str, not int 1"):
        recall.key(1, "d", "t", "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ignore: expected a list"):
        recall.key("p", "d", "t", "1", inputs={"n": 1}, ignore="n")


# ---- the native path of the common scalars (recall._native.scalar_key) ---------------------

UTC = dt.timezone.utc


def general_key(**kwargs: Any) -> recall.Key:
    """The key of recall.key's arguments through the general path: the key-material JSON
    built in Python and read by recall-key (recall._key.derive)."""
    from recall import _key
    args: dict = {"project": "p", "domain": "d", "task": "t", "cache_version": "1",
                  "inputs": None, "outputs": None, "ignore": (), "salt": None}
    args.update(kwargs)
    document, ignore = _key._document(**args)
    return _key.derive(document, ignore)


def native_key(**kwargs: Any) -> Any:
    from recall import _native
    args: dict = {"project": "p", "domain": "d", "task": "t", "cache_version": "1",
                  "inputs": None, "outputs": None, "ignore": (), "salt": None}
    args.update(kwargs)
    return _native.scalar_key(**args)


@pytest.mark.parametrize("kwargs", [
    {"project": "flytesnacks", "domain": "development", "task": "wf.example.train",
     "cache_version": " 1.0\n",
     "inputs": {"epochs": 10, "lr": 0.001, "shuffle": True, "name": "resnet-50",
                "timeout": dt.timedelta(hours=1),
                "asof": dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)},
     "outputs": {"model": "file", "n": int, "x": float, "ok": bool, "s": str, "b": bytes,
                 "names": "list<string>", "m": "map<string,optional<int>>"}},
    {"inputs": {"lo": -2**63, "hi": 2**63 - 1, "zero": 0, "tiny": 5e-324, "neg": -0.0,
                "big": 1.7976931348623157e308, "small": 1e-7, "f": False}},
    {"inputs": {"empty": "", "text": "é\x00\U0001F600\"\\", "raw": b"", "bin": b"\x00\xff"}},
    {"inputs": {"before": dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
                "east": dt.datetime(2024, 2, 29, 0, 30, tzinfo=dt.timezone(
                    dt.timedelta(hours=5, minutes=30))),
                "west": dt.datetime(2024, 1, 1, 23, 0, 0, 1, tzinfo=dt.timezone(
                    dt.timedelta(hours=-8))),
                "first": dt.datetime(1, 1, 1, tzinfo=UTC),
                "last": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}},
    {"inputs": {"minus": dt.timedelta(microseconds=-1), "long": dt.timedelta(days=100000),
                "none": dt.timedelta(0)}},
    {"inputs": {"n": 1, "log": "x", "when": dt.datetime(2024, 1, 1)},
     "ignore": ["log", "when"], "salt": "team-a"},
    {"inputs": {"n": 1, "log": 2**70}, "ignore": ("log",), "outputs": {}},
    {},
])
def test_scalar_inputs_take_the_native_path_with_the_same_key(kwargs: Any) -> None:
    native = native_key(**kwargs)
    assert native is not None
    general = general_key(**kwargs)
    assert native.hex == general.hex and native == general
    assert native.json() == general.json()
    assert native.material_json() == general.material_json()
    args = {k: v for k, v in kwargs.items()
            if k not in ("project", "domain", "task", "cache_version")}
    assert recall.key(kwargs.get("project", "p"), kwargs.get("domain", "d"),
                      kwargs.get("task", "t"), kwargs.get("cache_version", "1"),
                      **args).hex == general.hex


class Level(int):
    pass


@pytest.mark.parametrize("kwargs", [
    {"inputs": {"n": 2**63}},
    {"inputs": {"x": math.nan}},
    {"inputs": {"x": math.inf}},
    {"inputs": {"n": Level(3)}},
    {"inputs": {"when": dt.datetime(2024, 1, 1)}},
    {"inputs": {"when": dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))}},
    {"inputs": {"wait": dt.timedelta(days=999999999)}},
    {"inputs": {"s": "\ud800"}},
    {"inputs": {"tags": ["a"]}},
    {"inputs": {"n": None}},
    {"inputs": {1: 1}},
    {"outputs": {"o": "list< int >"}},
    {"outputs": {"o": pathlib.Path}},
    {"ignore": ["n"], "inputs": {"n": object()}},
    {"ignore": iter(["n"]), "inputs": {"n": 1}},
    {"salt": 1},
    {"task": Level(1)},
])
def test_other_values_are_left_to_the_general_path(kwargs: Any) -> None:
    assert native_key(**kwargs) is None


def test_native_key_material_is_the_values_at_the_call() -> None:
    inputs = {"n": 1, "s": "a"}
    key = recall.key("p", "d", "t", "1", inputs=inputs, outputs={"o": int})
    inputs["n"] = 2
    inputs["extra"] = 3
    assert json.loads(key.material_json())["inputs"] == [
        {"name": "n", "type": "int", "value": 1}, {"name": "s", "type": "string", "value": "a"}]


@pytest.mark.parametrize("kwargs", [
    {"project": "a/b"},
    {"cache_version": "   "},
    {"inputs": {"a b": 1}},
    {"inputs": {"n": 1}, "outputs": {"o/0": int}},
    {"inputs": {"n": 1}, "ignore": ["m"]},
    {"inputs": {"n": 1}, "ignore": ["n", "m"]},
    {"salt": ""},
])
def test_native_path_errors_are_the_general_paths(kwargs: Any) -> None:
    with pytest.raises(recall.InvalidInput) as native:
        native_key(**kwargs)
    with pytest.raises(recall.InvalidInput) as general:
        general_key(**kwargs)
    assert type(native.value) is type(general.value)
    assert str(native.value) == str(general.value)
