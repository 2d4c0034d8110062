"""recall.Store and recall.Daemon, and interop with the recall CLI both ways, on local disk
and S3 (moto)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
import uuid
from typing import Any, List

import pytest

import recall
from conftest import ensure_bucket, s3_settings, skipped


def run_cli(recall_bin: pathlib.Path, store: str, *args: str, cwd: Any,
            check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RECALL_STORE", "RECALL_DAEMON", "RECALL_TOKEN")}
    return subprocess.run([str(recall_bin), "--store", store, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=check)


MATERIAL = ["--project", "p", "--domain", "d", "--task", "interop", "--cache-version", "1",
            "--input", "n:int=3"]


def test_entry_published_by_recall_run_is_read_by_python(store_url: str,
                                                          recall_bin: pathlib.Path,
                                                          tmp_path: pathlib.Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("the quick brown fox\n")
    run = run_cli(recall_bin, store_url, "run", *MATERIAL, "--input", "text:file=@words.txt",
                  "--output", "counts:file=out/counts.txt", "--output", "tree:dir=out/tree",
                  "--", "sh", "-c",
                  "mkdir -p out/tree/sub && wc -w < words.txt > out/counts.txt && "
                  "echo leaf > out/tree/sub/leaf.txt", cwd=tmp_path)
    assert "CACHE_POPULATED" in run.stderr, run.stderr

    store = recall.Store(store_url)
    key = recall.key("p", "d", "interop", "1", inputs={"n": 3, "text": words},
                     outputs={"counts": pathlib.Path, "tree": recall.Dir})
    manifest = store.lookup(key)
    assert manifest is not None and manifest["key"]["key"] == key.hex
    assert set(manifest["outputs"]) == {"counts", "tree"}

    target = tmp_path / "restored"
    got = store.get(key, {"counts": target / "counts.txt", "tree": target / "tree"})
    assert got == {"counts": target / "counts.txt", "tree": target / "tree"}
    assert (target / "counts.txt").read_text().strip() == "4"
    assert (target / "tree" / "sub" / "leaf.txt").read_text() == "leaf\n"
    assert store.get_bytes(key, "counts").strip() == b"4"
    # Nothing but the outputs is left beside the targets (staging is cleaned up).
    assert sorted(p.name for p in target.iterdir()) == ["counts.txt", "tree"]


def test_entry_published_by_python_is_read_by_recall_get(store_url: str,
                                                          recall_bin: pathlib.Path,
                                                          tmp_path: pathlib.Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(bytes(range(256)) * 1000)
    plots = tmp_path / "plots"
    (plots / "a").mkdir(parents=True)
    (plots / "a" / "loss.svg").write_text("<svg/>")
    store = recall.Store(store_url)
    key = recall.key("p", "d", "interop", "1", inputs={"n": 3},
                     outputs={"model": "file", "plots": "dir", "note": "file"})
    result = store.put(key, {"model": model, "plots": plots, "note": b"hello from python"})
    assert result.published and result.nondeterminism == []

    run_cli(recall_bin, store_url, "get", *MATERIAL, "--output", "model:file=got/model.bin",
            "--output", "plots:dir=got/plots", "--output", "note:file=got/note.txt",
            cwd=tmp_path)
    assert (tmp_path / "got" / "model.bin").read_bytes() == model.read_bytes()
    assert (tmp_path / "got" / "plots" / "a" / "loss.svg").read_text() == "<svg/>"
    assert (tmp_path / "got" / "note.txt").read_bytes() == b"hello from python"

    inspected = run_cli(recall_bin, store_url, "inspect", *MATERIAL, "--output", "model:file",
                        "--output", "plots:dir", "--output", "note:file", cwd=tmp_path)
    assert key.hex in inspected.stdout


def test_value_outputs_of_the_decorator_are_read_by_recall_get(store_url: str,
                                                               recall_bin: pathlib.Path,
                                                               tmp_path: pathlib.Path) -> None:
    @recall.cached(store=recall.Store(store_url), project="p", domain="d",
                   cache_version="1", task="interop")
    def f(n: int) -> "tuple[int, list[str], bytes]":
        return n * n, ["a", "é"], b"\x00raw"

    assert f(3) == (9, ["a", "é"], b"\x00raw")
    out = run_cli(recall_bin, store_url, "get", *MATERIAL, "--output", "o0:int",
                  "--output", "o1:list<string>", "--output", "o2:bytes", "--stdout", "o0",
                  cwd=tmp_path)
    assert out.stdout == "9"
    out = run_cli(recall_bin, store_url, "get", *MATERIAL, "--output", "o0:int",
                  "--output", "o1:list<string>", "--output", "o2:bytes", "--stdout", "o1",
                  cwd=tmp_path)
    assert out.stdout == '["a","é"]'


def test_miss_returns_none_and_writes_nothing(store_url: str, tmp_path: pathlib.Path) -> None:
    store = recall.Store(store_url)
    key = recall.key("p", "d", "absent", "1", outputs={"o0": "file"})
    assert store.lookup(key) is None
    assert store.miss_reason(key) == "no entry"
    assert store.get(key, {"o0": tmp_path / "x"}) is None
    assert not (tmp_path / "x").exists()
    assert store.get_bytes(key, "o0") is None
    assert store.inspect(key) is None


def test_put_keeps_the_entry_and_warns_on_nondeterminism(store_url: str) -> None:
    store = recall.Store(store_url)
    key = recall.key("p", "d", "nd", "1", outputs={"o0": bytes})
    assert store.put(key, {"o0": b"one"}).published
    with pytest.warns(recall.NondeterminismWarning, match=f"CACHE_NONDETERMINISTIC {key.hex}"):
        kept = store.put(key, {"o0": b"two"})
    assert not kept.published and len(kept.nondeterminism) == 1
    assert store.get_bytes(key, "o0") == b"one"
    with pytest.warns(recall.NondeterminismWarning):
        assert store.put(key, {"o0": b"two"}, overwrite=True).published
    assert store.get_bytes(key, "o0") == b"two"
    records = store.inspect(key)["nondeterminism"]
    assert [r["outcome"] for r in records] == ["discarded", "replaced"]


def test_evict_and_explain(store_url: str) -> None:
    store = recall.Store(store_url)
    one = recall.key("p", "d", "ex", "1", inputs={"n": 1}, outputs={"o0": bytes})
    two = recall.key("p", "d", "ex", "1", inputs={"n": 2}, outputs={"o0": bytes})
    store.put(one, {"o0": b"x"})
    explained = store.explain(two)
    assert explained["verdict"] == "inputs", explained
    assert any('"n"' in reason for reason in explained["reasons"]), explained
    assert store.explain(one)["verdict"] == "hit"
    assert store.evict(one, dry_run=True)["entries"] == 1
    assert store.lookup(one) is not None
    assert store.evict(one)["entries"] == 1
    assert store.lookup(one) is None
    store.put(two, {"o0": b"y"})
    assert store.evict_task("p", "d", "ex")["entries"] == 1
    assert store.lookup(two) is None


def test_bad_store_input_names_the_problem(tmp_path: pathlib.Path) -> None:
    with pytest.raises(recall.InvalidInput, match='invalid store URL "ftp://x/y"'):
        recall.Store("ftp://x/y")
    with pytest.raises(recall.InvalidInput, match="storage_timeout -1"):
        recall.Store((tmp_path / "s").as_uri(), storage_timeout=-1)
    with pytest.raises(recall.InvalidInput, match="expected an http:// or https:// URL"):
        recall.Daemon("127.0.0.1:7700")
    store = recall.Store((tmp_path / "s").as_uri())
    key = recall.key("p", "d", "t", "1", outputs={"o0": "file"})
    with pytest.raises(TypeError, match="expected a recall.Key"):
        store.lookup("not a key")  # type: ignore[arg-type]
    with pytest.raises(recall.InvalidInput, match='output "other": not a declared output'):
        store.put(key, {"other": b"x"})
    with pytest.raises(recall.InvalidInput, match='output "o0" was not produced at'):
        store.put(key, {"o0": tmp_path / "missing.bin"})
    store.put(key, {"o0": b"x"})
    with pytest.raises(recall.InvalidInput, match='output "nope": the entry has no such'):
        store.get(key, {"nope": tmp_path / "nope"})


def test_backend_options_take_precedence_over_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if skipped("s3"):
        pytest.skip("SKIPPED (RECALL_TEST_SKIP=s3): S3 case")
    s3 = s3_settings()
    ensure_bucket(s3)
    # The environment names a server that is not there; the options name the real one.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    store = recall.Store(f"s3://{s3['bucket']}/py-options-{uuid.uuid4().hex[:12]}",
                         storage_timeout=20, aws_endpoint=s3["endpoint"],
                         aws_region=s3["region"], aws_access_key_id=s3["key_id"],
                         aws_secret_access_key=s3["secret"], aws_allow_http=True)
    key = recall.key("p", "d", "options", "1", outputs={"o0": bytes})
    assert store.put(key, {"o0": b"through options"}).published
    assert store.get_bytes(key, "o0") == b"through options"


def test_unknown_backend_options_are_named() -> None:
    with pytest.raises(recall.InvalidInput, match="no_such_option"):
        recall.Store("s3://bucket/x", no_such_option="1")
    with pytest.raises(recall.InvalidInput, match="file and memory stores take no options"):
        recall.Store("memory://", aws_region="us-east-1")


def test_storage_down_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = recall.Store("s3://no-server/x", storage_timeout=1)
    key = recall.key("p", "d", "t", "1")
    with pytest.raises(recall.StorageError, match="storage did not answer within 1 s"):
        store.lookup(key)


def test_daemon_has_the_same_methods(daemon_url: str, recall_bin: pathlib.Path,
                                     tmp_path: pathlib.Path) -> None:
    daemon = recall.Daemon(daemon_url)
    data = tmp_path / "in.txt"
    data.write_text("input bytes")
    key = recall.key("p", "d", "viad", "1", inputs={"data": data},
                     outputs={"o0": "file", "o1": bytes})
    assert daemon.lookup(key) is None
    assert daemon.put(key, {"o0": b"file bytes", "o1": b"\x01\x02"}).published
    assert daemon.lookup(key)["key"]["key"] == key.hex
    assert daemon.get_bytes(key, "o1") == b"\x01\x02"
    got = daemon.get(key, {"o0": tmp_path / "o0.txt"})
    assert got is not None and (tmp_path / "o0.txt").read_bytes() == b"file bytes"
    out = subprocess.run([str(recall_bin), "--daemon", daemon_url, "get", "--project", "p",
                          "--domain", "d", "--task", "viad", "--cache-version", "1",
                          "--input", f"data:file=@{data}", "--output", "o0:file",
                          "--output", "o1:bytes", "--stdout", "o0"],
                         capture_output=True, check=True)
    assert out.stdout == b"file bytes"
    assert daemon.explain(key)["verdict"] == "hit"
    assert daemon.evict(key)["entries"] == 1
    assert daemon.lookup(key) is None


def test_objects_are_shared_across_threads(tmp_path: pathlib.Path) -> None:
    store = recall.Store((tmp_path / "s").as_uri())
    errors: List[BaseException] = []

    def work(i: int) -> None:
        try:
            key = recall.key("p", "d", "threads", "1", inputs={"i": i}, outputs={"o0": bytes})
            store.put(key, {"o0": str(i).encode()})
            assert store.get_bytes(key, "o0") == str(i).encode()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
