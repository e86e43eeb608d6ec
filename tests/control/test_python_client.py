"""The official `kubernetes` Python client against the API server: create, list with selectors
and paging, patch (merge and strategic), watch, delete."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from tests.control.conftest import Cluster


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    with client.ApiClient(
        config.new_client_from_config(str(cluster.kubeconfig)).configuration
    ) as c:
        yield c


def _pod(name: str, **labels: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]),
    )


def test_create_list_patch_delete(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    ns = core.read_namespace("py")
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "py"
    for i in range(5):
        core.create_namespaced_pod("py", _pod(f"p{i}", app="a" if i % 2 else "b"))
    listed = core.list_namespaced_pod("py", label_selector="app=a")
    assert sorted(p.metadata.name for p in listed.items) == ["p1", "p3"]
    first = core.list_namespaced_pod("py", limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    rest = core.list_namespaced_pod("py", limit=10, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["p2", "p3", "p4"]
    named = core.list_namespaced_pod("py", field_selector="metadata.name=p4")
    assert [p.metadata.name for p in named.items] == ["p4"]

    patched = core.patch_namespaced_pod("p0", "py", {"metadata": {"labels": {"tier": "x"}}})
    assert patched.metadata.labels == {"app": "b", "tier": "x"}
    image = {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}
    patched = core.patch_namespaced_pod("p0", "py", image)
    assert [c.image for c in patched.spec.containers] == ["nginx:1.27"]
    assert int(patched.metadata.resource_version) > int(first.metadata.resource_version)

    net = client.NetworkingV1Api(api)
    policy = client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="deny"),
        spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector()),
    )
    created = net.create_namespaced_network_policy("py", policy)
    assert created.spec.policy_types == ["Ingress"]

    core.delete_namespaced_pod("p0", "py")
    assert len(core.list_namespaced_pod("py").items) == 4
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_pod("p0", "py")
    assert missing.value.status == 404


def test_watch_streams_changes(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyw")))
    start = core.list_namespaced_config_map("pyw").metadata.resource_version
    seen: list[tuple[str, str]] = []
    watcher = watch.Watch()

    def consume() -> None:
        stream = watcher.stream(
            core.list_namespaced_config_map, "pyw", resource_version=start, timeout_seconds=10
        )
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                watcher.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_config_map(
        "pyw", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"))
    )
    core.patch_namespaced_config_map("c", "pyw", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("c", "pyw")
    thread.join(timeout=15)
    assert seen == [("ADDED", "c"), ("MODIFIED", "c"), ("DELETED", "c")]


def test_watch_with_selector_sees_objects_enter_and_leave(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pysel")))
    start = core.list_namespaced_config_map("pysel").metadata.resource_version
    seen: list[tuple[str, str]] = []
    watcher = watch.Watch()

    def consume() -> None:
        stream = watcher.stream(
            core.list_namespaced_config_map, "pysel", label_selector="app=a",
            resource_version=start, timeout_seconds=10,
        )  # fmt: skip
        for event in stream:
            seen.append((event["type"], event["object"].metadata.labels.get("app", "")))
            if len(seen) == 4:
                watcher.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    meta = client.V1ObjectMeta(name="c", labels={"app": "a"})
    core.create_namespaced_config_map("pysel", client.V1ConfigMap(metadata=meta))
    core.patch_namespaced_config_map("c", "pysel", {"metadata": {"labels": {"app": "b"}}})
    core.patch_namespaced_config_map("c", "pysel", {"data": {"k": "v"}})  # unseen: not selected
    core.patch_namespaced_config_map("c", "pysel", {"metadata": {"labels": {"app": "a"}}})
    core.patch_namespaced_config_map("c", "pysel", {"data": {"k": "w"}})
    thread.join(timeout=15)
    assert seen == [("ADDED", "a"), ("DELETED", "b"), ("ADDED", "a"), ("MODIFIED", "a")]
