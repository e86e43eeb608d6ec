"""The informer's failure paths over a scripted transport: 410 re-lists and delivers the
difference, errors back off and keep the copy, a seeded informer resumes with a watch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kubefence.client import ApiError, Event, Informer, Resource

CONFIGMAPS = Resource("", "v1", "configmaps")


def _cm(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "n", "resourceVersion": version}}


class ScriptedKube:
    """Answers list() and watch() from scripts; a script step that is an exception is raised."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.watch_versions: list[str] = []

    def list(self, path: str, **_: Any) -> tuple[list[dict[str, Any]], str]:
        step = self.lists.pop(0) if self.lists else ([], "999")
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[no-any-return]

    def watch(self, path: str, *, resource_version: str, **_: Any) -> Iterator[dict[str, Any]]:
        self.watch_versions.append(resource_version)
        step = self.watches.pop(0) if self.watches else []
        if isinstance(step, Exception):
            raise step
        if not self.watches and not step:
            time.sleep(0.05)  # an idle watch
        yield from step


def _run(kube: ScriptedKube, informer: Informer, until: int, events: list[Event]) -> None:
    informer.start()
    deadline = time.monotonic() + 5
    while len(events) < until and time.monotonic() < deadline:
        time.sleep(0.01)
    informer.stop(0)


def test_410_relists_and_delivers_the_difference_as_events() -> None:
    """A watch answered with 410 Expired makes the informer list again; objects that vanished
    meanwhile arrive as DELETED, new ones as ADDED, changed ones as MODIFIED."""
    kube = ScriptedKube(
        lists=[
            ([_cm("stays", "1"), _cm("goes", "2"), _cm("changes", "3")], "3"),
            ([_cm("stays", "1"), _cm("changes", "7"), _cm("new", "8")], "8"),
        ],
        watches=[ApiError(410, {"reason": "Expired"}, ""), []],
    )
    events: list[Event] = []
    informer = Informer(kube, CONFIGMAPS, handler=events.append, resync=0)  # type: ignore[arg-type]
    _run(kube, informer, 6, events)
    assert [(e.type, e.key) for e in events[3:]] == [
        ("MODIFIED", "n/changes"),
        ("ADDED", "n/new"),
        ("DELETED", "n/goes"),
    ]
    assert informer.counters.expired == 1
    assert kube.watch_versions[:2] == ["3", "8"]


def test_errors_back_off_and_keep_the_copy() -> None:
    """Connection failures are counted and retried with a growing delay; the items already
    known stay (rules built from them are never flushed)."""
    kube = ScriptedKube(
        lists=[([_cm("a", "1")], "1")],
        watches=[ConnectionRefusedError("down"), ConnectionRefusedError("down"), []],
    )
    events: list[Event] = []
    informer = Informer(kube, CONFIGMAPS, handler=events.append, resync=0)  # type: ignore[arg-type]
    informer.start()
    time.sleep(0.8)  # 0.2 s + 0.4 s of back-off
    informer.stop(0)
    assert informer.counters.errors == 2
    assert "ConnectionRefusedError" in informer.counters.last_error
    assert set(informer.items) == {"n/a"}
    assert [e.type for e in events] == ["ADDED"]


def test_a_seeded_informer_resumes_with_a_watch_and_follows_bookmarks() -> None:
    """Items and a version given before start: no list, a watch from that version; a BOOKMARK
    moves the version without an event."""
    kube = ScriptedKube(
        lists=[],
        watches=[
            [
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}},
                {"type": "DELETED", "object": _cm("a", "21")},
            ],
            [],
        ],
    )
    events: list[Event] = []
    informer = Informer(kube, CONFIGMAPS, handler=events.append, resync=0)  # type: ignore[arg-type]
    informer.items = {"n/a": _cm("a", "5")}
    informer.resource_version = "10"
    _run(kube, informer, 1, events)
    assert kube.watch_versions[:2] == ["10", "21"]
    assert [(e.type, e.key) for e in events] == [("DELETED", "n/a")]
    assert informer.counters.lists == 0


def test_a_failing_handler_does_not_stop_the_informer() -> None:
    """An exception in a handler is logged; later events still arrive."""
    kube = ScriptedKube(lists=[([_cm("a", "1"), _cm("b", "2")], "2")], watches=[[]])
    seen: list[str] = []

    def handler(event: Event) -> None:
        seen.append(event.key)
        if event.key == "n/a":
            raise RuntimeError("bug")

    informer = Informer(kube, CONFIGMAPS, handler=handler, resync=0)  # type: ignore[arg-type]
    _run(kube, informer, 2, seen)  # type: ignore[arg-type]
    assert seen == ["n/a", "n/b"]
