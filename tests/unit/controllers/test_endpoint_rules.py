"""EndpointSlice contents from a Service and its pods (pure): port resolution, families,
readiness, chunks."""

from __future__ import annotations

from typing import Any

from kubefence.controllers.endpointslices import desired_slices, resolve_ports

Obj = dict[str, Any]


def service(*ports: Obj, families: list[str] | None = None, publish: bool = False) -> Obj:
    return {"spec": {"selector": {"app": "x"}, "ports": list(ports),
                     "ipFamilies": families or ["IPv4"],
                     "publishNotReadyAddresses": publish}}  # fmt: skip


def pod(name: str, ips: list[str], *, ready: bool = True, ports: list[Obj] | None = None,
        phase: str = "Running", node: str = "n1") -> Obj:  # fmt: skip
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]},
        "status": {"phase": phase, "podIP": ips[0] if ips else None,
                   "podIPs": [{"ip": ip} for ip in ips],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }  # fmt: skip


def test_named_target_port_resolves_per_pod_and_unknown_names_drop() -> None:
    svc = service({"name": "web", "port": 80, "targetPort": "http"},
                  {"name": "raw", "port": 81, "targetPort": 8081, "protocol": "UDP"})  # fmt: skip
    with_name = pod("a", ["198.18.1.2"], ports=[{"name": "http", "containerPort": 8080}])
    assert resolve_ports(svc, with_name) == (
        {"name": "web", "port": 8080, "protocol": "TCP"},
        {"name": "raw", "port": 8081, "protocol": "UDP"},
    )
    assert resolve_ports(svc, pod("b", ["198.18.1.3"])) == (
        {"name": "raw", "port": 8081, "protocol": "UDP"},
    )
    # a name declared for UDP does not resolve a TCP port
    udp = pod("c", ["198.18.1.4"], ports=[{"name": "http", "containerPort": 53,
                                           "protocol": "UDP"}])  # fmt: skip
    assert [p["port"] for p in resolve_ports(svc, udp)] == [8081]


def test_slices_group_by_ports_and_family_and_skip_finished_pods() -> None:
    svc = service({"name": "", "port": 80, "targetPort": "http"}, families=["IPv4", "IPv6"])
    pods = [
        pod("a", ["198.18.1.2", "fd00:6b66:1::2"], ports=[{"name": "http", "containerPort": 80}]),
        pod("b", ["198.18.1.3"], ports=[{"name": "http", "containerPort": 8080}], ready=False),
        pod("c", ["198.18.1.4"], ports=[{"name": "http", "containerPort": 80}], phase="Failed"),
    ]
    slices = desired_slices(svc, pods)
    summary = [(family, [p["port"] for p in ports], [e["targetRef"]["name"] for e in eps])
               for family, ports, eps in slices]  # fmt: skip
    assert sorted(summary) == [
        ("IPv4", [80], ["a"]),
        ("IPv4", [8080], ["b"]),
        ("IPv6", [80], ["a"]),
    ]
    endpoint_b = next(eps[0] for _, ports, eps in slices if ports[0]["port"] == 8080)
    assert endpoint_b["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert endpoint_b["nodeName"] == "n1"


def test_publish_not_ready_and_chunks_of_100() -> None:
    svc = service({"port": 80, "targetPort": 80}, publish=True)
    pods = [pod(f"p{i:03}", [f"198.18.2.{i % 250}"], ready=False) for i in range(230)]
    slices = desired_slices(svc, pods)
    assert [len(eps) for _, _, eps in slices] == [100, 100, 30]
    assert all(e["conditions"]["ready"] for _, _, eps in slices for e in eps)


def test_no_pods_still_gives_one_empty_slice() -> None:
    assert desired_slices(service({"port": 80}), []) == [
        ("IPv4", ({"name": "", "port": 80, "protocol": "TCP"},), [])
    ]


def test_legacy_endpoints_split_ready_and_not_ready_per_port_list() -> None:
    from kubefence.controllers.endpoints import endpoint_subsets

    svc = service({"port": 80, "targetPort": "http"}, families=["IPv4", "IPv6"])
    pods = [
        pod("a", ["198.18.1.2", "fd00:6b66:1::2"], ports=[{"name": "http", "containerPort": 80}]),
        pod("b", ["198.18.1.3"], ports=[{"name": "http", "containerPort": 80}], ready=False),
        pod("c", ["198.18.1.4"], ports=[{"name": "http", "containerPort": 81}]),
    ]
    subsets = endpoint_subsets(svc, pods)
    assert [s["ports"] for s in subsets] == [
        [{"port": 80, "protocol": "TCP"}],
        [{"port": 81, "protocol": "TCP"}],
    ]
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["198.18.1.2"]  # primary family only
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["198.18.1.3"]
    assert subsets[1]["addresses"][0]["targetRef"]["name"] == "c"
    assert endpoint_subsets(svc, []) == []
