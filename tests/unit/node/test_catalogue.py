"""The image catalogue (pure): which images serve what, which run a command, which are unknown."""

from __future__ import annotations

import pytest

from kubefence.node._catalogue import image_kind, plan_pod


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        ("nginx", "nginx"),
        ("docker.io/library/nginx:1.27@sha256:abc", "nginx"),
        ("busybox", "shell"),
        ("alpine:3.20", "shell"),
        ("registry.k8s.io/e2e-test-images/agnhost:2.53", "agnhost"),
        ("kubefence/dns", "dns"),
        ("registry.local:5000/kubefence/dns:1", "dns"),
        ("redis", "generic"),
        ("example.com/alpine-tools", "generic"),
    ],
)
def test_image_kind(image: str, kind: str) -> None:
    assert image_kind(image) == kind


def test_nginx_serves_http_on_80_when_no_port_is_declared() -> None:
    plan = plan_pod({"containers": [{"name": "web", "image": "nginx"}]})
    assert plan.tcp == {80: "http"}
    assert plan.containers[0].argv == ()
    assert plan.unknown_images == ()


def test_shell_images_run_their_command_args_or_sh() -> None:
    plan = plan_pod(
        {
            "containers": [
                {"name": "a", "image": "busybox", "command": ["sleep"], "args": ["10"]},
                {"name": "b", "image": "busybox", "args": ["sleep", "5"]},
                {"name": "c", "image": "alpine", "stdin": True},
            ]
        }
    )
    assert [c.argv for c in plan.containers] == [("sleep", "10"), ("sleep", "5"), ("sh",)]
    assert [c.stdin for c in plan.containers] == [False, False, True]
    assert (plan.tcp, plan.udp) == ({}, ())


def test_agnhost_serves_hostnames_and_runs_other_subcommands_through_the_shim() -> None:
    plan = plan_pod(
        {
            "containers": [
                {
                    "name": "s",
                    "image": "agnhost",
                    "command": ["/agnhost", "serve-hostname", "--tcp", "--port", "80"],
                    "ports": [{"containerPort": 80}, {"containerPort": 81, "protocol": "UDP"}],
                },
                {"name": "c", "image": "agnhost", "args": ["connect", "a:80", "--timeout=1s"]},
            ]
        }
    )
    assert plan.tcp == {80: "hostname"}
    assert plan.udp == (81,)
    assert plan.udp_hostname
    assert [c.argv for c in plan.containers] == [(), ("agnhost", "connect", "a:80", "--timeout=1s")]


def test_unknown_images_get_the_generic_server_and_are_named() -> None:
    plan = plan_pod(
        {
            "containers": [
                {
                    "name": "r",
                    "image": "redis:7",
                    "ports": [{"containerPort": 6379}, {"containerPort": 53, "protocol": "UDP"}],
                }
            ]
        }
    )
    assert plan.tcp == {6379: "banner"}
    assert plan.udp == (53,)
    assert not plan.udp_hostname
    assert plan.unknown_images == ("redis:7",)


def test_dns_pods_open_no_ports_on_the_node_server() -> None:
    plan = plan_pod(
        {
            "containers": [
                {"name": "dns", "image": "kubefence/dns", "ports": [{"containerPort": 53}]}
            ]
        }
    )
    assert plan.dns
    assert (plan.tcp, plan.udp) == ({}, ())
