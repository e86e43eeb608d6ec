"""kubefence.client against the real API server: requests, paging, an informer's list and watch,
and the live-cluster reader (the informer's failure paths: tests/unit/client)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tests.control.conftest import Cluster

from kubefence.client import ApiError, Event, Informer, Kube, Resource, connect, read_objects

NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps")


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Kube:
    return connect(cluster.kubeconfig)


def test_resource_paths_follow_the_api_layout() -> None:
    """Core and grouped resources, namespaced and cluster-scoped, with subresources."""
    pods = Resource("", "v1", "pods")
    assert pods.path() == "/api/v1/pods"
    assert pods.path(namespace="a", name="p", subresource="status") == (
        "/api/v1/namespaces/a/pods/p/status"
    )
    deployments = Resource("apps", "v1", "deployments")
    assert deployments.path(namespace="x") == "/apis/apps/v1/namespaces/x/deployments"
    assert NAMESPACES.path(namespace="ignored", name="n") == "/api/v1/namespaces/n"


def test_errors_carry_the_servers_status(kube: Kube) -> None:
    """A 404 raises ApiError with code, reason and the server's message."""
    with pytest.raises(ApiError) as caught:
        kube.get(NAMESPACES.path(name="no-such-namespace"))
    assert caught.value.code == 404
    assert caught.value.reason == "NotFound"
    assert 'namespaces "no-such-namespace" not found' in str(caught.value)


def test_list_pages_through_every_item(kube: Kube) -> None:
    """list() follows continue tokens: 7 objects read 2 at a time come back complete."""
    kube.create(NAMESPACES.path(), {"metadata": {"name": "paging"}})
    for index in range(7):
        kube.create(CONFIGMAPS.path(namespace="paging"), {"metadata": {"name": f"c{index}"}})
    items, version = kube.list(CONFIGMAPS.path(namespace="paging"), page=2)
    assert sorted(item["metadata"]["name"] for item in items) == [f"c{i}" for i in range(7)]
    assert version


def test_informer_lists_then_delivers_each_change_in_order(kube: Kube) -> None:
    """The first list arrives as ADDED and sets synced; then create, update and delete arrive as
    ADDED, MODIFIED and DELETED with the previous copy."""
    kube.create(NAMESPACES.path(), {"metadata": {"name": "inf"}})
    kube.create(CONFIGMAPS.path(namespace="inf"), {"metadata": {"name": "before"}})
    events: list[Event] = []
    informer = Informer(kube, CONFIGMAPS, namespace="inf", handler=events.append, resync=0)
    informer.start()
    try:
        assert informer.wait_synced(5)
        assert [(e.type, e.key) for e in events] == [("ADDED", "inf/before")]
        path = CONFIGMAPS.path(namespace="inf")
        kube.create(path, {"metadata": {"name": "c"}, "data": {"a": "1"}})
        kube.patch(CONFIGMAPS.path(namespace="inf", name="c"), {"data": {"a": "2"}})
        kube.delete(CONFIGMAPS.path(namespace="inf", name="c"))
        assert _until(lambda: len(events) == 4)
        assert [(e.type, e.key) for e in events[1:]] == [
            ("ADDED", "inf/c"),
            ("MODIFIED", "inf/c"),
            ("DELETED", "inf/c"),
        ]
        assert events[2].old is not None
        assert events[2].old["data"] == {"a": "1"}
        assert "inf/c" not in informer.items
    finally:
        informer.stop(0)


def test_read_objects_returns_manifest_shaped_dicts(kube: Kube) -> None:
    """Live objects come back with apiVersion and kind and without server-owned metadata; CRDs
    the server does not serve are skipped."""
    kube.create(NAMESPACES.path(), {"metadata": {"name": "live", "labels": {"t": "1"}}})
    objects = read_objects(kube, namespaces=["live"])
    live = [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "live"]
    assert live
    assert live[0]["apiVersion"] == "v1"
    assert "resourceVersion" not in live[0]["metadata"]
    assert "managedFields" not in live[0]["metadata"]
