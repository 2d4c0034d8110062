"""recall from Python against recall in Rust, same machine, same run.

Times `recall.key` with 10 scalar inputs and a `Store.lookup` hit on a local-disk store,
and the same two operations in Rust (crates/recall-py/examples/rust_baseline.rs), then
prints both and their ratio. Build both in release mode first:

    (cd python && maturin develop --release)
    cargo build --release -p recall-py --example rust_baseline
    target/pyenv/bin/python python/bench/compare.py target/release/examples/rust_baseline [FILE]

`--json` as the first argument prints {"python": {...}, "rust": {...}} (nanoseconds per call)
instead of the table; scripts/bench.sh reads that. With FILE (e.g. a 1 GiB file) it also times a key with that file as its one input, hashed
by content (best of five, the file in the page cache after the first read).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Callable

import recall

INPUTS = {
    "epochs": 10, "lr": 0.001, "shuffle": True, "name": "resnet-50", "seed": 42,
    "momentum": 0.9, "dataset": "imagenet/train", "batch": 256,
    "timeout": dt.timedelta(hours=1),
    "asof": dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc),
}


def key() -> recall.Key:
    return recall.key("flytesnacks", "development", "wf.example.train", "1.0",
                      inputs=INPUTS, outputs={"model": "file"})


def best(n: int, f: Callable[[], object]) -> float:
    """Best of five rounds of n calls, nanoseconds per call."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(n):
            f()
        rounds.append((time.perf_counter_ns() - start) / n)
    return min(rounds)


def main() -> None:
    as_json = sys.argv[1:2] == ["--json"]
    if as_json:
        del sys.argv[1]
    baseline = sys.argv[1]
    with tempfile.TemporaryDirectory() as rust_dir, tempfile.TemporaryDirectory() as py_dir:
        rust = json.loads(subprocess.run([baseline, rust_dir, *sys.argv[2:3]], check=True,
                                         capture_output=True, text=True).stdout)
        store = recall.Store(f"file://{py_dir}")
        k = key()
        store.put(k, {"model": b"weights"})
        python = {"key_ns": best(20_000, key),
                  "lookup_ns": best(2_000, lambda: store.lookup(k))}
        if len(sys.argv) > 2:
            path = pathlib.Path(sys.argv[2])
            python["file_ns"] = best(1, lambda: recall.key("p", "d", "t", "1",
                                                           inputs={"data": path}))
    if as_json:
        print(json.dumps({"python": python, "rust": rust}))
        return
    print(f"{'operation':<28}{'Python':>12}{'Rust':>12}{'ratio':>8}")
    for name, label in (("key_ns", "recall.key, 10 scalars"),
                        ("lookup_ns", "Store.lookup hit (file://)"),
                        ("file_ns", "recall.key, one file input")):
        if name not in python:
            continue
        print(f"{label:<28}{python[name] / 1000:>10.1f}us{rust[name] / 1000:>10.1f}us"
              f"{python[name] / rust[name]:>7.1f}x")


if __name__ == "__main__":
    main()
