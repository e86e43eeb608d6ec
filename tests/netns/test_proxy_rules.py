"""Services + EndpointSlices -> Service ports and the DNAT table text (pure: no root)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from kubefence.node._proxy_rules import Backend, render_table, render_update, service_ports


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
    assert "elements = { 198.19.1.2 . tcp . 80 : goto svc_198_19_1_2_tcp_80 }" in lines
    assert "elements = { 198.19.1.2 . udp . 53 : goto refuse }" in lines  # no endpoints
    assert (
        "meta l4proto tcp dnat ip to numgen random mod 2 map "
        "{ 0 : 198.18.0.3 . 8080, 1 : 198.18.0.4 . 8080 }"
    ) in lines
    assert "elements = { 198.18.0.3 . 198.18.0.3, 198.18.0.4 . 198.18.0.4 }" in lines  # hairpin
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
    assert "meta l4proto tcp dnat ip6 to numgen random mod 1 map { 0 : fd00:6b66::3 . 80 }" in six
    assert render_table(service_ports([WEB], slices)) == text  # deterministic: no-op detection


def _ports(spec: dict[str, list[str]]) -> list[Any]:
    """Service ports from {service name: [endpoint addresses]} (one TCP port 80 each)."""
    services, slices = [], []
    for index, (name, addresses) in enumerate(sorted(spec.items())):
        services.append(svc(name, clusterIP=f"198.19.2.{index + 1}",
                            ports=[{"port": 80, "protocol": "TCP"}]))  # fmt: skip
        slices.append(slice_(name, [{"port": 8080, "protocol": "TCP"}],
                             [{"addresses": [a]} for a in addresses]))  # fmt: skip
    return service_ports(services, slices)


def test_updates_touch_only_what_changed() -> None:
    old = _ports({"a": ["198.18.0.3"], "b": [], "c": ["198.18.0.5"]})
    new = _ports({"a": ["198.18.0.3", "198.18.0.4"], "b": [], "c": ["198.18.0.5"]})
    update = render_update(old, new).splitlines()
    assert all("198.19.2.2" not in line and "198.19.2.3" not in line for line in update)
    assert "add element inet kubefence-svc hairpin4 { 198.18.0.4 . 198.18.0.4 }" in update
    assert render_update(new, new) == ""


@pytest.mark.netns
def test_full_table_plus_updates_equals_the_full_table_of_the_result() -> None:
    """In a scratch namespace: render(old) then each update gives the same kernel table as
    render(new), through endpoints added, removed, emptied, services added and removed."""
    steps = [
        {"a": ["198.18.0.3"], "b": [], "c": ["198.18.0.5", "198.18.0.6"]},
        {"a": ["198.18.0.3", "198.18.0.4"], "b": ["198.18.0.7"], "c": []},
        {"a": [], "b": ["198.18.0.7"], "d": ["198.18.0.3"]},
        {"b": [], "d": ["198.18.0.3", "198.18.0.8"], "e": ["198.18.0.9"]},
    ]
    netns = f"kf-t{os.getpid()}-svcrules"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:

        def nft(text: str) -> str:
            done = subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=text,
                                  capture_output=True, text=True, check=False)  # fmt: skip
            assert done.returncode == 0, done.stderr
            argv = ["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "kubefence-svc"]
            listed = subprocess.run(argv, capture_output=True, text=True, check=True)
            return "\n".join(sorted(line.strip() for line in listed.stdout.splitlines()))

        previous = _ports(steps[0])
        nft(render_table(previous))
        for step in steps[1:]:
            current = _ports(step)
            updated = nft(render_update(previous, current))
            assert updated == nft(render_table(current)), step
            previous = current
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
