"""The cyclic collector during the agent's first sync: off while it lists, on again after.

Why this module exists: ``Agent.run`` turns the collector off from the first list until the
first table is installed (the lists allocate millions of long-lived objects). A process that
keeps it off would grow without bound, so these tests pin that it comes back on when the first
sync is given up (stop) and when the API server keeps the first sync waiting too long.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.unit.agent.test_admin_tiers import _NotServed

import kubefence.agent._agent as agent_module
from kubefence.agent._agent import Agent, Options


class _NeverSynced:
    """An informer whose first list never arrives (the API server is unreachable)."""

    def __init__(self, seen: list[bool]) -> None:
        self.seen = seen

    def start(self) -> None:
        pass

    def wait_synced(self, timeout: float | None = None) -> bool:
        self.seen.append(gc.isenabled())
        threading.Event().wait(min(timeout or 0.0, 0.02))
        return False

    def stop(self, timeout: float = 0.0) -> None:
        pass


@pytest.fixture
def collecting() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.enable()
    yield
    if not enabled:
        gc.disable()


def _agent(seen: list[bool]) -> Agent:
    agent = Agent(Options(node="n1", unsupported=()), kube=_NotServed())  # type: ignore[arg-type]
    agent.lease.acquire = lambda: True  # type: ignore[method-assign]
    agent.lease.release = lambda: None  # type: ignore[method-assign]
    agent.enforcer.start = lambda *, fail_open: "open"  # type: ignore[method-assign]
    agent.informers = {"Pod": _NeverSynced(seen)}  # type: ignore[dict-item]
    return agent


def _run_until(agent: Agent, seen: list[bool], count: int) -> None:
    runner = threading.Thread(target=agent.run)
    runner.start()
    while len(seen) < count and runner.is_alive():
        threading.Event().wait(0.01)
    agent.stop()
    runner.join(5)
    assert not runner.is_alive()


@pytest.mark.usefixtures("collecting")
def test_the_collector_is_off_while_waiting_and_on_after_a_stop() -> None:
    seen: list[bool] = []
    agent = _agent(seen)
    _run_until(agent, seen, 3)
    assert seen[:3] == [False, False, False]
    assert gc.isenabled()


@pytest.mark.usefixtures("collecting")
def test_the_collector_comes_back_when_the_first_sync_waits_too_long(monkeypatch: Any) -> None:
    monkeypatch.setattr(agent_module, "FIRST_SYNC_NO_GC", 0.05)
    seen: list[bool] = []
    agent = _agent(seen)
    _run_until(agent, seen, 30)
    assert seen[0] is False
    assert seen[-1] is True
    assert gc.isenabled()
