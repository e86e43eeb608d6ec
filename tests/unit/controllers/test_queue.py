"""The work queue and cache the controllers share."""

from __future__ import annotations

import threading
import time

from kubefence.client import Event
from kubefence.controllers._runtime import Cache, WorkQueue


def test_a_key_queued_twice_is_handed_out_once() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert [queue.get(0.01), queue.get(0.01), queue.get(0.01)] == ["a", "b", None]


def test_a_key_in_progress_is_not_handed_to_a_second_worker() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0.01) == "a"
    queue.add("a")  # changed again while being worked on
    assert queue.get(0.01) is None
    queue.done("a")
    assert queue.get(0.01) == "a"


def test_add_after_delays() -> None:
    queue = WorkQueue()
    started = time.monotonic()
    queue.add_after("later", 0.2)
    assert queue.get(0.05) is None
    assert queue.get(1.0) == "later"
    assert time.monotonic() - started >= 0.19


def test_close_wakes_waiting_workers() -> None:
    queue = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.get(5.0)))
    worker.start()
    queue.close()
    worker.join(2.0)
    assert got == [None]


def test_cache_indexes_follow_events() -> None:
    cache = Cache()
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                        "ownerReferences": [{"uid": "rs1", "controller": True}]},
           "spec": {"nodeName": "n1"}}  # fmt: skip
    cache.apply(Event("ADDED", "ns/p", pod))
    assert cache.owned_by("rs1") == [pod]
    assert cache.on_node("n1") == [pod]
    assert cache.in_namespace("ns") == [pod]
    assert cache.by_uid("u1") == pod
    moved = {**pod, "spec": {"nodeName": "n2"}}
    cache.apply(Event("MODIFIED", "ns/p", moved, pod))
    assert cache.on_node("n1") == []
    assert cache.on_node("n2") == [moved]
    cache.apply(Event("DELETED", "ns/p", moved, moved))
    assert cache.owned_by("rs1") == []
    assert cache.by_uid("u1") is None
    assert len(cache) == 0
