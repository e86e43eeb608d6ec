"""A pod the agent has not planned yet is held (root): fail closed for new pods.

Why this module exists: a pod has its address before the agent learns of it from the API
server; with ``--hold-cidr`` (the node's pod CIDRs) and any NetworkPolicy in the cluster,
the agent's table drops packets from or to such an address until the pod is planned. Here
the sandbox runs nginx, client and busybox, the API server knows only client at first, and
probes run every 3 ms the whole time: nothing reaches nginx or leaves busybox until each is
published, and then each is answered. Every namespace and process is removed.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest
import yaml
from tests.netns.conftest import QUICKSTART_PODS, SELECTS_NOTHING, inventory_of, unique_name
from tests.netns.test_agent_harness import (
    AgentProcess,
    Prober,
    admin,
    agent_kubeconfig,
    api_server,
    kubectl_apply,
    publish_pods,
)

from kubefence.dataplane.netns import Sandbox, down

pytestmark = pytest.mark.netns


def _key(obj: dict[str, object]) -> str:
    metadata = obj["metadata"]
    assert isinstance(metadata, dict)
    return f"{metadata.get('namespace', 'default')}/{metadata['name']}"


def _held_until(prober: Prober, since: float, until: float) -> None:
    results = [ok for sent, ok in prober.since(since) if sent < until - prober.wait]
    assert len(results) > 50, "the prober did not run"
    assert not any(results), f"{sum(results)} of {len(results)} probes answered while held"


def test_new_pods_are_neither_reachable_nor_reach_out_until_planned(tmp_path: Path) -> None:
    manifests = [d for d in yaml.safe_load_all(QUICKSTART_PODS) if d]
    namespaces = [m for m in manifests if m["kind"] == "Namespace"]
    pods = {_key(m): m for m in manifests if m["kind"] == "Pod"}
    name = unique_name()
    probers: list[Prober] = []
    agent: AgentProcess | None = None
    with api_server(tmp_path, "hold") as cluster:
        sandbox = Sandbox.up(inventory_of(QUICKSTART_PODS), name=name)
        try:
            kube = admin(cluster)
            publish_pods(kube, sandbox, [*namespaces, pods["test/client"]])
            kubectl_apply(cluster, SELECTS_NOTHING)
            nginx, client = sandbox.slot("test/nginx"), sandbox.slot("test/client")
            held = {
                str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
                for slot in (nginx, client, sandbox.slot("default/busybox"))
                for address, prefix in ((slot.ipv4, 24), (slot.ipv6, 64))
            }
            extra = [arg for cidr in sorted(held) for arg in ("--hold-cidr", cidr)]
            agent = AgentProcess(
                agent_kubeconfig(cluster, tmp_path / "hold.kubeconfig"),
                sandbox.state.node_netns,
                tmp_path / "hold.log",
                extra=(*extra, "--unsupported-protocol", "SCTP"),
            ).start()
            agent.wait_ready()
            started = time.monotonic()
            to_nginx = Prober(client.netns, str(nginx.ipv4), 80)  # a new pod reachable?
            from_busybox = Prober(sandbox.slot("default/busybox").netns, str(nginx.ipv4), 80)
            probers += [to_nginx, from_busybox]
            for prober in probers:
                prober.start()
            time.sleep(1.0)
            published = time.monotonic()
            publish_pods(kube, sandbox, [pods["test/nginx"]])
            _held_until(to_nginx, started, published)
            assert to_nginx.first(True, after=published, settle=3.0) is not None, agent.tail()
            time.sleep(0.5)
            published_busybox = time.monotonic()
            _held_until(from_busybox, started, published_busybox)  # nginx planned, busybox not
            publish_pods(kube, sandbox, [pods["default/busybox"]])
            answered = from_busybox.first(True, after=published_busybox, settle=3.0)
            assert answered is not None, agent.tail()
        finally:
            for prober in probers:
                prober.stop()
            if agent is not None:
                agent.stop()
            down(name)
