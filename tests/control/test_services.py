"""Service ClusterIPs through the real kubectl: `run --expose`, `get svc`, a fixed address,
a taken or foreign address refused with kube-apiserver's message, release on delete."""

from __future__ import annotations

import ipaddress
import json

from tests.control.conftest import Cluster


def test_run_expose_and_get_svc_show_the_cluster_ip(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "svc-a")
    k("run", "nginx", "--image=nginx", "--labels", "app=nginx", "-n", "svc-a", "--expose",
      "--port", "80")  # fmt: skip
    ip = k("get", "svc", "nginx", "-n", "svc-a", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("198.19.0.0/16")
    row = k("get", "svc", "-n", "svc-a").stdout.splitlines()[1].split()
    assert row[:5] == ["nginx", "ClusterIP", ip, "<none>", "80/TCP"]
    assert ip in k("get", "all", "-n", "svc-a").stdout


def test_a_fixed_address_is_honoured_once_and_released_on_delete(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "svc-b")
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dns", "namespace": "svc-b"},
        "spec": {"clusterIP": "198.19.0.53", "ports": [{"port": 53, "protocol": "UDP"}]},
    }
    k("create", "-f", "-", input=json.dumps(manifest))
    shown = k("get", "svc", "dns", "-n", "svc-b", "-o", "jsonpath={.spec.clusterIPs}").stdout
    assert json.loads(shown) == ["198.19.0.53"]
    second = json.dumps({**manifest, "metadata": {"name": "dns2", "namespace": "svc-b"}})
    taken = k("create", "-f", "-", check=False, input=second)
    assert taken.returncode == 1
    assert taken.stderr.strip() == (
        'The Service "dns2" is invalid: spec.clusterIPs: Invalid value: []string{"198.19.0.53"}: '
        "failed to allocate IP 198.19.0.53: provided IP is already allocated"
    )
    foreign = {**manifest, "metadata": {"name": "far", "namespace": "svc-b"}}
    foreign["spec"] = {**manifest["spec"], "clusterIP": "198.18.9.9"}
    refused = k("create", "-f", "-", check=False, input=json.dumps(foreign))
    assert "the provided IP (198.18.9.9) is not in the valid range. The range of valid IPs is " \
        "198.19.0.0/16" in refused.stderr  # fmt: skip
    # `kubectl apply` of the same manifest without the address keeps it.
    unfixed = {
        **manifest,
        "spec": {"ports": [{"port": 53, "protocol": "UDP"}], "selector": {"a": "b"}},
    }
    k("apply", "-f", "-", input=json.dumps(unfixed))
    assert k("get", "svc", "dns", "-n", "svc-b", "-o",
             "jsonpath={.spec.clusterIP}").stdout == "198.19.0.53"  # fmt: skip
    k("delete", "svc", "dns", "-n", "svc-b")
    k("create", "-f", "-", input=second)
    assert k("get", "svc", "dns2", "-n", "svc-b", "-o",
             "jsonpath={.spec.clusterIP}").stdout == "198.19.0.53"  # fmt: skip


def test_changing_the_address_is_refused(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "svc-c")
    k("create", "service", "clusterip", "web", "--tcp=80:8080", "-n", "svc-c")
    moved = '{"spec":{"clusterIP":"198.19.0.77","clusterIPs":["198.19.0.77"]}}'
    patched = k("patch", "svc", "web", "-n", "svc-c", "-p", moved, check=False)
    assert patched.returncode == 1
    assert (
        'spec.clusterIPs[0]: Invalid value: []string{"198.19.0.77"}: may not change once set'
        in (patched.stderr)
    )
