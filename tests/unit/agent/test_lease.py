"""The node Lease: one holder at a time, release hands over at once, expiry hands over later,
and a holder that finds another one in its place calls ``on_lost``."""

from __future__ import annotations

import copy
from typing import Any

from kubefence.agent._api import NodeLease
from kubefence.client import ApiError


class FakeKube:
    """A Lease store with resourceVersion conflicts, as the API server answers."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0

    def _stamp(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[path] = body
        return copy.deepcopy(body)

    def get(self, path: str) -> dict[str, Any]:
        if path not in self.objects:
            raise ApiError(404, {"reason": "NotFound"}, "")
        return copy.deepcopy(self.objects[path])

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        full = f"{path}/{body['metadata']['name']}"
        if full in self.objects:
            raise ApiError(409, {"reason": "AlreadyExists"}, "")
        return self._stamp(full, body)

    def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self.objects[path]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiError(409, {"reason": "Conflict"}, "")
        return self._stamp(path, body)


def lease(kube: FakeKube, **kwargs: Any) -> NodeLease:
    return NodeLease(kube, node="n1", namespace="kubefence-system", duration=5, **kwargs)  # type: ignore[arg-type]


def test_one_holder_release_hands_over_and_expiry_hands_over() -> None:
    kube = FakeKube()
    first, second = lease(kube), lease(kube)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.try_acquire()  # renewal
    first.held.set()
    first.release()
    assert kube.get(first.path)["spec"]["holderIdentity"] is None
    assert second.try_acquire()
    assert kube.get(first.path)["spec"]["holderIdentity"] == second.identity
    # An expired lease (renewed long ago) is taken over.
    kube.objects[first.path]["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"
    third = lease(kube)
    assert third.try_acquire()
    assert kube.get(first.path)["spec"]["leaseTransitions"] == 2


def test_a_holder_that_lost_the_lease_calls_on_lost() -> None:
    kube = FakeKube()
    lost: list[bool] = []
    first = lease(kube, on_lost=lambda: lost.append(True))
    first.duration = 0.03  # renew every 10 ms
    assert first.acquire()
    kube.objects[first.path]["spec"]["holderIdentity"] = "someone-else"
    first._thread.join(2.0)  # type: ignore[union-attr]
    assert lost == [True]
    assert not first.held.is_set()
