"""Services + EndpointSlices -> Service ports and the DNAT table text (pure: no root)."""

from __future__ import annotations

from typing import Any

from kubefence.node._proxy_rules import Backend, render_table, service_ports


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "test", "name": name}, "spec": spec}


def slice_(service: str, ports: list[dict[str, Any]], endpoints: list[dict[str, Any]],
           family: str = "IPv4") -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"namespace": "test", "name": f"{service}-x",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": family, "ports": ports, "endpoints": endpoints,
    }  # fmt: skip


WEB = svc("web", clusterIP="198.19.1.2", clusterIPs=["198.19.1.2"],
          ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                 {"name": "dns", "port": 53, "protocol": "UDP"}])  # fmt: skip


def test_named_target_ports_come_from_the_slice_and_only_ready_endpoints_count() -> None:
    slices = [
        slice_("web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
               [{"addresses": ["198.18.0.3"]},
                {"addresses": ["198.18.0.4"], "conditions": {"ready": True}},
                {"addresses": ["198.18.0.5"], "conditions": {"ready": False}}]),
        slice_("web", [{"name": "http", "port": 9090, "protocol": "TCP"}],
               [{"addresses": ["198.18.1.3"]}]),  # another pod resolves `http` differently
        slice_("web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
               [{"addresses": ["fd00:6b66::3"]}], family="IPv6"),
    ]  # fmt: skip
    ports = service_ports([WEB], slices)
    by_port = {(p.protocol, p.port): p for p in ports}
    assert by_port[("TCP", 80)].backends == (
        Backend("198.18.0.3", 8080),
        Backend("198.18.0.4", 8080),
        Backend("198.18.1.3", 9090),
    )
    assert by_port[("UDP", 53)].backends == ()  # the slices have no `dns` port
    assert by_port[("TCP", 80)].service == "test/web"


def test_headless_external_name_and_local_traffic_policy() -> None:
    headless = svc("h", clusterIP="None", clusterIPs=["None"], ports=[{"port": 80}])
    external = svc("e", type="ExternalName", externalName="example.org")
    local = svc("l", clusterIP="198.19.1.3", internalTrafficPolicy="Local",
                ports=[{"port": 80, "protocol": "TCP"}])  # fmt: skip
    slices = [
        slice_("l", [{"port": 80, "protocol": "TCP"}],
               [{"addresses": ["198.18.0.3"], "nodeName": "node-1"},
                {"addresses": ["198.18.1.3"], "nodeName": "node-2"}]),
    ]  # fmt: skip
    ports = service_ports([headless, external, local], slices, node="node-1")
    assert [(p.service, p.backends) for p in ports] == [("test/l", (Backend("198.18.0.3", 80),))]


def test_the_table_replaces_itself_and_names_every_decision() -> None:
    slices = [slice_("web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                     [{"addresses": ["198.18.0.3"]}, {"addresses": ["198.18.0.4"]}])]  # fmt: skip
    text = render_table(service_ports([WEB], slices))
    lines = [line.strip() for line in text.splitlines()]
    assert lines[1:3] == ["table inet kubefence-svc", "delete table inet kubefence-svc"]
    assert "elements = { 198.19.1.2 . tcp . 80 : goto svc0 }" in lines
    assert "elements = { 198.19.1.2 . udp . 53 : goto refuse }" in lines  # no endpoints
    assert "numgen random mod 2 vmap { 0 : goto svc0ep0, 1 : goto svc0ep1 }" in lines
    assert "meta l4proto tcp dnat ip to 198.18.0.4:8080" in lines
    assert "ip saddr 198.18.0.3 ct mark set ct mark | 0x4000" in lines  # hairpin
    assert "meta l4proto tcp reject with tcp reset" in lines
    assert lines.index("ip daddr 198.19.255.0/24 return") < lines.index(
        "ip daddr 198.19.0.0/16 goto refuse"
    )  # the underlay is never rejected
    assert 'comment "test/web:http/TCP"' in lines
    six = render_table(service_ports(
        [svc("six", clusterIPs=["fd00:6b66:5e::9"], ports=[{"port": 80, "protocol": "TCP"}])],
        [slice_("six", [{"port": 80, "protocol": "TCP"}], [{"addresses": ["fd00:6b66::3"]}],
                family="IPv6")],
    ))  # fmt: skip
    assert "meta l4proto tcp dnat ip6 to [fd00:6b66::3]:80" in six
    assert render_table(service_ports([WEB], slices)) == text  # deterministic: no-op detection
