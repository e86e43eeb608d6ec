"""EndpointSlices and node lifecycle through the real API server: slices follow pod readiness,
addresses and named ports; a node whose Lease stops being renewed turns NotReady. Same set-up as
``test_controllers``."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.control.test_controllers import GRACE, NODES, SLICES, Controllers, ctl, wait_for

__all__ = ["ctl"]

Obj = dict[str, Any]


def _slices(ctl: Controllers, ns: str, service: str) -> list[Obj]:
    items, _ = ctl.kube.list(
        SLICES.path(namespace=ns), query={"labelSelector": f"kubernetes.io/service-name={service}"}
    )
    return sorted(items, key=lambda s: [p["port"] for p in s.get("ports") or []])


def _pod(name: str, port: int, *, node: str) -> str:
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "api"}},
        "spec": {"nodeName": node, "containers": [{
            "name": "c", "image": "agnhost",
            "ports": [{"name": "http", "containerPort": port}]}]},
    })  # fmt: skip


def _endpoints(slices: list[Obj]) -> dict[str, tuple[bool, int | None]]:
    """pod name -> (ready, port)"""
    found = {}
    for piece in slices:
        port = (piece.get("ports") or [{}])[0].get("port")
        for endpoint in piece.get("endpoints") or ():
            found[endpoint["targetRef"]["name"]] = (endpoint["conditions"]["ready"], port)
    return found


def test_endpointslices_follow_readiness_and_named_ports(ctl: Controllers) -> None:
    ns = ctl.namespace("svc")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"},
                 "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
    }))  # fmt: skip
    empty = wait_for(lambda: _slices(ctl, ns, "api"), what="an (empty) slice")
    assert empty[0]["addressType"] == "IPv4"
    assert not empty[0].get("endpoints")
    labels = empty[0]["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert empty[0]["metadata"]["ownerReferences"][0]["kind"] == "Service"
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod("a", 8080, node="node-a"))
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod("b", 9090, node="node-b"))
    # bound but no address yet: no endpoints
    time.sleep(0.5)
    assert _endpoints(_slices(ctl, ns, "api")) == {}
    a = ctl.nodes.run_pod(ctl.pods(ns, "app=api")[0], ready=False, ip="198.18.1.10")
    ctl.nodes.run_pod(ctl.pods(ns, "app=api")[1], ready=True, ip="198.18.2.10")
    found = wait_for(
        lambda: len(_endpoints(s := _slices(ctl, ns, "api"))) == 2 and s, what="2 endpoints"
    )
    # the named targetPort resolves per pod: two slices, one port list each
    assert _endpoints(found) == {"a": (False, 8080), "b": (True, 9090)}
    by_pod = {e["targetRef"]["name"]: e for piece in found for e in piece["endpoints"]}
    assert by_pod["a"]["addresses"] == ["198.18.1.10"]
    assert by_pod["a"]["nodeName"] == "node-a"
    assert by_pod["a"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert found[0]["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    # readiness flips: the slice follows
    ctl.nodes.run_pod(a, ready=True, ip="198.18.1.10")
    wait_for(lambda: _endpoints(_slices(ctl, ns, "api")).get("a") == (True, 8080), what="ready")
    described = ctl.kubectl("get", "endpointslices", "-n", ns).stdout
    assert "198.18.1.10" in described
    assert "198.18.2.10" in described
    # the legacy Endpoints object says the same, one subset per port list
    endpoints = wait_for(
        lambda: len((e := ctl.kube.get(f"/api/v1/namespaces/{ns}/endpoints/api")).get(
            "subsets") or []) == 2 and all(x.get("addresses") for x in e["subsets"]) and e,
        what="Endpoints with 2 ready subsets",
    )  # fmt: skip
    pairs = sorted((s["addresses"][0]["ip"], s["ports"][0]["port"]) for s in endpoints["subsets"])
    assert pairs == [("198.18.1.10", 8080), ("198.18.2.10", 9090)]
    assert "198.18.1.10:8080" in ctl.kubectl("get", "endpoints", "api", "-n", ns).stdout
    # a pod whose labels no longer match leaves; a deleted pod leaves
    ctl.kubectl("label", "pod", "b", "-n", ns, "app=other", "--overwrite")
    wait_for(lambda: set(_endpoints(_slices(ctl, ns, "api"))) == {"a"}, what="b left")
    ctl.kubectl("delete", "pod", "a", "-n", ns)
    wait_for(lambda: _endpoints(_slices(ctl, ns, "api")) == {}, what="a left")
    # deleting the Service removes its slices (owner references) and its Endpoints
    ctl.kubectl("delete", "service", "api", "-n", ns)
    wait_for(lambda: not _slices(ctl, ns, "api"), what="slices gone")
    wait_for(
        lambda: "NotFound" in ctl.kubectl("get", "endpoints", "api", "-n", ns, check=False).stderr,
        what="Endpoints gone",
    )
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_numeric_target_port_and_deployment_backends(ctl: Controllers) -> None:
    ns = ctl.namespace("svc2")
    ctl.nodes.ready_namespaces.add(ns)
    ctl.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx", "--replicas=3",
                "--port=80")  # fmt: skip
    ctl.kubectl("expose", "deployment", "web", "-n", ns, "--port=8000", "--target-port=80")
    found = wait_for(
        lambda: len(_endpoints(s := _slices(ctl, ns, "web"))) == 3 and s, what="3 endpoints"
    )
    assert {port for _, port in _endpoints(found).values()} == {80}
    assert all(ready for ready, _ in _endpoints(found).values())
    nodes = {e["nodeName"] for piece in found for e in piece["endpoints"]}
    assert nodes == {"node-a", "node-b", "node-c"}
    ctl.kubectl("scale", "deploy/web", "-n", ns, "--replicas=1")
    wait_for(lambda: len(_endpoints(_slices(ctl, ns, "web"))) == 1, what="1 endpoint")
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def _ready_status(ctl: Controllers, node: str) -> str:
    obj = ctl.kube.get(NODES.path(name=node))
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_node_without_lease_renewal_becomes_not_ready(ctl: Controllers) -> None:
    ctl.nodes.add("node-x", 8)
    ns = ctl.namespace("lifecycle")
    try:
        ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod("on-x", 80, node="node-x"))
        ctl.nodes.run_pod(ctl.pods(ns)[0], ready=True, ip="198.18.8.10")
        time.sleep(GRACE + 1.0)  # renewed all along: still Ready
        assert _ready_status(ctl, "node-x") == "True"
        started = time.monotonic()
        ctl.nodes.beating.discard("node-x")  # its node component "dies"
        wait_for(lambda: _ready_status(ctl, "node-x") == "Unknown", timeout=GRACE + 10,
                 what="Ready=Unknown")  # fmt: skip
        took = time.monotonic() - started
        assert took >= GRACE - 0.5
        row = next(
            line for line in ctl.kubectl("get", "nodes").stdout.splitlines()
            if line.startswith("node-x ")
        )  # fmt: skip
        assert row.split()[1] == "NotReady"
        node = ctl.kube.get(NODES.path(name="node-x"))
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "NodeStatusUnknown"
        assert ready["message"] == "Kubelet stopped posting node status."
        # its pods are marked not ready (so Services stop sending them traffic)
        wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "False"
                             for c in ctl.pods(ns)[0]["status"]["conditions"]),
                 what="pod not ready")  # fmt: skip
        # new pods avoid it
        ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fresh"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "node-x"},
                     "containers": [{"name": "c", "image": "agnhost"}]}}))  # fmt: skip
        events = wait_for(
            lambda: [e for e in ctl.kube.list(f"/api/v1/namespaces/{ns}/events")[0]
                     if e["involvedObject"]["name"] == "fresh"],
            what="FailedScheduling",
        )  # fmt: skip
        assert "untolerated taint {node.kubernetes.io/unreachable: }" in events[0]["message"]
        # it comes back: its node component reports Ready again
        ctl.nodes.beating.add("node-x")
        ctl.nodes.set_ready("node-x", True)
        assert wait_for(lambda: ctl.pods(ns, "") and any(
            p["metadata"]["name"] == "fresh" and p["spec"].get("nodeName") == "node-x"
            for p in ctl.pods(ns)), what="fresh placed after recovery")  # fmt: skip
        assert _ready_status(ctl, "node-x") == "True"
    finally:
        ctl.nodes.remove("node-x")
        ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_service_changes_move_slices_and_selectorless_services_are_left_alone(
    ctl: Controllers,
) -> None:
    ns = ctl.namespace("svc3")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod("a", 8080, node="node-a"))
    ctl.nodes.run_pod(ctl.pods(ns)[0], ready=True, ip="198.18.1.30")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "moving"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(service))
    wait_for(lambda: _endpoints(_slices(ctl, ns, "moving")) == {"a": (True, 8080)}, what="8080")
    service["spec"]["ports"] = [{"port": 80, "targetPort": 9999}]
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(service))
    wait_for(lambda: _endpoints(_slices(ctl, ns, "moving")) == {"a": (True, 9999)}, what="9999")
    service["spec"]["selector"] = {"app": "nothing"}
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(service))
    wait_for(lambda: _endpoints(_slices(ctl, ns, "moving")) == {}, what="no endpoints")
    # a Service without a selector: its hand-made slice is nobody else's business
    manual = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual"},
              "spec": {"ports": [{"port": 80}]}}  # fmt: skip
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manual))
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "manual-1", "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv4", "ports": [{"port": 80}],
        "endpoints": [{"addresses": ["198.18.9.9"]}]}))  # fmt: skip
    time.sleep(1.0)
    slices = _slices(ctl, ns, "manual")
    assert [s["metadata"]["name"] for s in slices] == ["manual-1"]
    assert slices[0]["endpoints"][0]["addresses"] == ["198.18.9.9"]
    ctl.kubectl("delete", "namespace", ns, "--wait=false")
