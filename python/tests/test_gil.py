"""The GIL is released while recall hashes and does I/O, so other Python threads run.

Each test makes the question deterministic instead of timing it: the switch interval is
raised to 30 s, so a thread holding the GIL keeps it until it blocks or ends. The worker
thread sets `in_call`, wakes the main thread through an Event and enters recall. The main
thread can only run again once the worker gives up the GIL: during the call if recall
releases it (it then sees `in_call` still set and counts), or only after the worker has
cleared `in_call` and ended if recall holds it (it then counts nothing). The last test shows
that the probe tells the two apart.
"""

from __future__ import annotations

import pathlib
import sys
import threading
import time
from typing import Callable, Iterator

import pytest

import recall


@pytest.fixture
def long_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def turns_while_inside(call: Callable[[], object]) -> int:
    """How many loop turns the main thread ran while `call` ran in another thread."""
    state = {"in_call": False, "error": None}
    woken = threading.Event()

    def worker() -> None:
        state["in_call"] = True
        woken.set()
        try:
            call()
        except BaseException as e:  # reported by the main thread
            state["error"] = e
        state["in_call"] = False

    thread = threading.Thread(target=worker)
    thread.start()
    woken.wait()
    turns = 0
    while state["in_call"]:
        turns += 1
        time.sleep(0)  # lets the worker take the GIL back as soon as recall returns
    thread.join()
    if state["error"] is not None:
        raise state["error"]
    return turns


def test_hashing_a_file_input_releases_the_gil(tmp_path: pathlib.Path,
                                               long_switch_interval: None) -> None:
    data = tmp_path / "data.bin"
    with open(data, "wb") as f:
        for i in range(64):
            f.write(bytes([i]) * (1 << 20))  # 64 MiB: long enough to be seen running

    turns = turns_while_inside(
        lambda: recall.key("p", "d", "t", "1", inputs={"data": data}, outputs={}))

    assert turns > 0, "the main thread never ran while recall.key hashed a 64 MiB file"


def test_store_io_releases_the_gil(tmp_path: pathlib.Path, long_switch_interval: None) -> None:
    store = recall.Store(f"file://{tmp_path / 'store'}")
    key = recall.key("p", "d", "t", "1", inputs={"n": 1}, outputs={"out": bytes})
    big = bytes(range(256)) * (32 << 12)  # 32 MiB output: the publish hashes and writes it

    turns = turns_while_inside(lambda: store.put(key, {"out": big}))

    assert turns > 0, "the main thread never ran while Store.put wrote a 32 MiB output"
    assert store.get_bytes(key, "out") == big


def test_the_probe_tells_a_call_that_holds_the_gil(long_switch_interval: None) -> None:
    assert turns_while_inside(lambda: sum(range(3_000_000))) == 0  # pure Python: holds it
    assert turns_while_inside(lambda: time.sleep(0.05)) > 0  # sleep releases it
