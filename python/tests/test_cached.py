"""@recall.cached: miss then hit, what changes the key, ignored inputs, serialize across
processes, fail open when storage is down, overwrite, return shapes, bad input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import pathlib
import subprocess
import sys
import textwrap
import warnings
from typing import Dict, List, NamedTuple, Optional, Tuple

import pytest

import recall


@pytest.fixture
def store(store_url: str) -> recall.Store:
    return recall.Store(store_url)


def test_miss_then_hit_runs_the_body_once(store: recall.Store) -> None:
    calls: List[int] = []

    @recall.cached(store=store, project="p", domain="d", cache_version="1")
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert square(3) == 9
    assert square(3) == 9
    assert square(n=3) == 9
    assert calls == [3]
    assert square(4) == 16
    assert calls == [3, 4]
    assert square.recall_task == "test_cached.test_miss_then_hit_runs_the_body_once.square"
    assert store.lookup(square.recall_key(3)) is not None


def test_cache_version_and_signature_change_the_key(store: recall.Store) -> None:
    calls: List[str] = []

    def make(version: str):
        @recall.cached(store=store, project="p", domain="d", cache_version=version,
                       task="wf.versioned")
        def f(n: int) -> int:
            calls.append(version)
            return n + 1
        return f

    assert make("1")(1) == 2
    assert make("1")(1) == 2
    assert make("2")(1) == 2
    assert calls == ["1", "2"]

    @recall.cached(store=store, project="p", domain="d", cache_version="1",
                   task="wf.versioned")
    def retyped(n: float) -> int:
        calls.append("float")
        return 2

    assert retyped(1.0) == 2  # the input's type is in the signature: a miss
    assert calls == ["1", "2", "float"]


def test_defaults_are_inputs_and_ignored_inputs_do_not_change_the_key(
        store: recall.Store) -> None:
    calls: List[Tuple[int, bool]] = []

    @recall.cached(store=store, project="p", domain="d", cache_version="1",
                   ignore=["verbose"])
    def f(n: int, scale: int = 2, verbose: bool = False) -> int:
        calls.append((n, verbose))
        return n * scale

    assert f(3) == 6
    assert f(3, verbose=True) == 6
    assert f(3, 2) == 6
    assert calls == [(3, False)]
    assert f(3, scale=3) == 9
    assert len(calls) == 2


def test_return_shapes_round_trip(store: recall.Store, tmp_path: pathlib.Path) -> None:
    class Pair(NamedTuple):
        count: int
        label: str

    @dataclasses.dataclass
    class Stats:
        mean: float
        when: dt.datetime
        took: dt.timedelta
        tags: List[str]
        extra: Optional[Dict[str, int]]

    calls: List[str] = []
    kw = dict(store=store, project="p", domain="d", cache_version="1",
              output_dir=tmp_path / "restored")

    @recall.cached(**kw)
    def pair(n: int) -> Pair:
        calls.append("pair")
        return Pair(n, "x" * n)

    @recall.cached(**kw)
    def stats(xs: List[float]) -> Stats:
        calls.append("stats")
        return Stats(sum(xs) / len(xs), dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
                     dt.timedelta(seconds=1.5), ["a", "b"], None)

    @recall.cached(**kw)
    def triple(s: str) -> Tuple[str, float, bool]:
        calls.append("triple")
        return s.upper(), math.nan, True

    @recall.cached(**kw)
    def blob(n: int) -> bytes:
        calls.append("blob")
        return bytes(range(n))

    @recall.cached(**kw)
    def nothing(n: int) -> None:
        calls.append("nothing")

    @recall.cached(**kw)
    def write_file(text: str) -> pathlib.Path:
        calls.append("file")
        path = tmp_path / "work" / "out.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    @recall.cached(**kw)
    def write_dir(n: int) -> recall.Dir:
        calls.append("dir")
        path = tmp_path / "work" / "tree"
        (path / "sub").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (path / "sub" / f"{i}.txt").write_text(str(i))
        return path

    for _ in range(2):
        assert pair(3) == Pair(3, "xxx")
        got = stats([1.0, 2.0])
        assert got == Stats(1.5, dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
                            dt.timedelta(seconds=1.5), ["a", "b"], None)
        s, nan, flag = triple("ab")
        assert (s, flag) == ("AB", True) and math.isnan(nan)
        assert blob(5) == b"\x00\x01\x02\x03\x04"
        assert nothing(1) is None
        assert write_file("hello").read_text() == "hello"
        tree = write_dir(2)
        assert sorted(p.name for p in (tree / "sub").iterdir()) == ["0.txt", "1.txt"]
    assert calls == ["pair", "stats", "triple", "blob", "nothing", "file", "dir"]
    # On the hit, file outputs are restored under output_dir/<key>/<output>.
    restored = write_file("hello")
    assert restored == tmp_path / "restored" / write_file.recall_key("hello").hex / "o0"


def test_storage_down_runs_the_function_with_a_warning(daemon_url: str) -> None:
    # A daemon URL on a port nothing listens on (the fixture's recalld is not used).
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    calls: List[int] = []

    @recall.cached(store=recall.Daemon(f"http://127.0.0.1:{port}", storage_timeout=5),
                   project="p", domain="d", cache_version="1")
    def f(n: int) -> int:
        calls.append(n)
        return n + 1

    for _ in range(2):
        with pytest.warns(recall.CacheWarning) as caught:
            assert f(1) == 2
        messages = [str(w.message) for w in caught]
        assert any(m.startswith("CACHE_LOOKUP_FAILURE") for m in messages), messages
        assert any(m.startswith("CACHE_PUT_FAILURE") for m in messages), messages
    assert calls == [1, 1]


def test_slow_s3_store_fails_open_within_the_storage_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    calls: List[int] = []

    @recall.cached(store=recall.Store("s3://no-server/cache", storage_timeout=1),
                   project="p", domain="d", cache_version="1")
    def f(n: int) -> int:
        calls.append(n)
        return -n

    with pytest.warns(recall.CacheWarning) as caught:
        assert f(7) == -7
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("CACHE_LOOKUP_FAILURE") and "storage did not answer within 1 s"
               in m for m in messages), messages
    assert calls == [7]


def test_overwrite_runs_again_and_replaces_the_entry(store: recall.Store) -> None:
    results = iter([1, 2, 3])

    def make(overwrite: bool):
        @recall.cached(store=store, project="p", domain="d", cache_version="1",
                       task="wf.overwrite", overwrite=overwrite)
        def f(n: int) -> int:
            return next(results)
        return f

    assert make(False)(0) == 1
    assert make(False)(0) == 1
    with pytest.warns(recall.NondeterminismWarning, match="CACHE_NONDETERMINISTIC"):
        assert make(True)(0) == 2
    assert make(False)(0) == 2
    records = store.inspect(make(False).recall_key(0))["nondeterminism"]
    assert [r["outcome"] for r in records] == ["replaced"]


def test_serialize_across_processes_runs_the_body_once(store_url: str,
                                                       tmp_path: pathlib.Path) -> None:
    counter = tmp_path / "runs.txt"
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        import recall

        @recall.cached(store={store_url!r}, project="p", domain="d", cache_version="1",
                       task="wf.serialized", serialize=True, poll=0.1)
        def slow(n: int) -> int:
            with open({str(counter)!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            time.sleep(1.0)
            return n * 10

        print(slow(4))
    """))
    workers = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outputs
    assert [out.strip() for out, _ in outputs] == ["40"] * 4
    assert len(counter.read_text().splitlines()) == 1


def test_bad_input_raises_before_the_body_runs(store: recall.Store,
                                               tmp_path: pathlib.Path) -> None:
    calls: List[object] = []

    @recall.cached(store=store, project="p", domain="d", cache_version="1")
    def f(x, path: pathlib.Path = tmp_path / "missing.csv") -> int:  # noqa: ANN001
        calls.append(x)
        return 1

    with pytest.raises(TypeError, match='input "x": a value of Python type builtins.object'):
        f(object())
    with pytest.raises(recall.InvalidInput, match=r'input "path": .*missing.csv'):
        f(1)
    assert calls == []

    @recall.cached(store=store, project="p", domain="d", cache_version="1")
    def typed(n: int) -> int:
        return n

    with pytest.raises(TypeError, match='input "n" of type int: cannot use str'):
        typed("3")

    @recall.cached(store=store, project="bad/project", domain="d", cache_version="1")
    def bad_name(n: int) -> int:
        return n

    with pytest.raises(recall.InvalidInput, match='invalid project "bad/project"'):
        bad_name(1)

    @recall.cached(store=store, project="p", domain="d", cache_version="1", ignore=["m"])
    def bad_ignore(n: int) -> int:
        return n

    with pytest.raises(recall.InvalidInput, match='ignored input names "m"'):
        bad_ignore(1)


def test_annotations_are_checked(store: recall.Store) -> None:
    @recall.cached(store=store, project="p", domain="d", cache_version="1")
    def no_return(n: int):  # noqa: ANN201
        return n

    with pytest.raises(TypeError, match="needs a return annotation"):
        no_return(1)

    @recall.cached(store=store, project="p", domain="d", cache_version="1")
    def odd_return(n: int) -> object:
        return n

    with pytest.raises(TypeError, match="has no KEY-SPEC type"):
        odd_return(1)

    with pytest.raises(TypeError, match="args and \\*\\*kwargs are not supported"):
        @recall.cached(store=store, project="p", domain="d", cache_version="1")
        def variadic(*xs: int) -> int:
            return 0

        variadic(1)


def test_a_wrong_return_value_is_returned_but_not_stored(store: recall.Store) -> None:
    calls: List[int] = []

    @recall.cached(store=store, project="p", domain="d", cache_version="1")
    def f(n: int) -> int:
        calls.append(n)
        return "not an int"  # type: ignore[return-value]

    for _ in range(2):
        with pytest.warns(recall.CacheWarning, match="nothing published"):
            assert f(1) == "not an int"
    assert calls == [1, 1]


def test_exceptions_propagate_and_publish_nothing(store: recall.Store) -> None:
    @recall.cached(store=store, project="p", domain="d", cache_version="1", serialize=True)
    def f(n: int) -> int:
        raise RuntimeError("boom")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="boom"):
            f(1)
        # The lease was released: a second call takes it at once and fails the same way.
        with pytest.raises(RuntimeError, match="boom"):
            f(1)
    assert store.lookup(f.recall_key(1)) is None
