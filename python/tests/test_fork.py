"""A process forked after the parent used recall (multiprocessing's default start method on
Linux) can use recall too: the child gets its own I/O runtime and connections instead of
waiting forever on the parent's, whose threads were not copied by fork."""

from __future__ import annotations

import multiprocessing
import os
import pathlib

import pytest

import recall


def child_work(store_url: str, daemon_url: str, parent_store: recall.Store,
               parent_daemon: recall.Daemon) -> None:
    key = recall.key("p", "d", "forked", "1", inputs={"pid": os.getpid()},
                     outputs={"o0": bytes})
    # Objects made in the parent, used again in the child.
    for cache in (parent_store, parent_daemon):
        assert cache.lookup(key) is None
        assert cache.put(key, {"o0": b"from the child"}).published
        assert cache.get_bytes(key, "o0") == b"from the child"
    # And new ones.
    assert recall.Store(store_url).get_bytes(key, "o0") == b"from the child"
    assert recall.Daemon(daemon_url).get_bytes(key, "o0") == b"from the child"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_uses_the_cache(store_url: str, daemon_url: str) -> None:
    store = recall.Store(store_url)
    daemon = recall.Daemon(daemon_url)
    warm = recall.key("p", "d", "forked", "1", outputs={"o0": bytes})
    store.put(warm, {"o0": b"parent"})  # the parent's runtime and connections are in use
    daemon.put(warm, {"o0": b"parent"})
    context = multiprocessing.get_context("fork")
    child = context.Process(target=child_work, args=(store_url, daemon_url, store, daemon))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the forked child hung on the cache")
    assert child.exitcode == 0
    assert store.get_bytes(warm, "o0") == b"parent"  # the parent still works
