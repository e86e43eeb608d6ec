"""The agent enforces the admin tiers (root): ClusterNetworkPolicy applied with kubectl.

Why this module exists: issue 15 asks the agent to watch ClusterNetworkPolicy and enforce it
as the planner renders it. Against our API server, with the agent's own RBAC (deploy/), real
kubectl and real packets from the pods' namespaces: a Baseline policy isolating tenants drops
blue -> red and keeps red -> red; a tenant NetworkPolicy opening red/web overrides Baseline;
an Admin Deny from blue is not overridden by that NetworkPolicy; deleting it opens again.
Every namespace and process is removed, also on failure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.control.conftest import Cluster
from tests.netns.conftest import inventory_of, unique_name
from tests.netns.test_agent_harness import (
    AgentProcess,
    Prober,
    admin,
    agent_kubeconfig,
    api_server,
    kubectl_apply,
    kubectl_delete,
    publish_pods,
)

from kubefence.dataplane.netns import Sandbox, down

pytestmark = pytest.mark.netns

TENANTS = """
apiVersion: v1
kind: Namespace
metadata: {name: red, labels: {tenant: red}}
---
apiVersion: v1
kind: Namespace
metadata: {name: blue, labels: {tenant: blue}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: red, labels: {app: web}}
spec:
  containers:
  - name: web
    image: nginx
    ports: [{name: http, containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: red, labels: {app: client}}
spec: {containers: [{name: client, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: blue, labels: {app: client}}
spec: {containers: [{name: client, image: busybox}]}
"""

BASELINE = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: tenant-isolation}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces: {matchLabels: {tenant: red}}
  ingress:
  - name: same-tenant
    action: Accept
    from: [{namespaces: {matchLabels: {tenant: red}}}]
  - name: other-tenants
    action: Deny
    from: [{namespaces: {matchExpressions: [{key: tenant, operator: Exists}]}}]
"""

OPEN_WEB = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open-web, namespace: red}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{}]
"""

ADMIN_DENY = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-blue}
spec:
  tier: Admin
  priority: 10
  subject:
    namespaces: {matchLabels: {tenant: red}}
  ingress:
  - name: blue
    action: Deny
    from: [{namespaces: {matchLabels: {tenant: blue}}}]
"""


@dataclass
class Tenants:
    cluster: Cluster
    from_blue: Prober
    from_red: Prober
    agent: AgentProcess

    def outcome(self, prober: Prober, answered: bool, after: float) -> None:
        """The first probe with that outcome after ``after``, then every probe of the next
        half second has it (the change holds, not one lost SYN)."""
        assert prober.first(answered, after=after, settle=3.0) is not None, self.agent.tail()
        since = time.monotonic()
        time.sleep(0.5 + prober.wait)
        seen = [ok for sent, ok in prober.since(since) if sent < since + 0.5]
        assert seen, "the prober did not run"
        assert all(ok is answered for ok in seen), (seen.count(not answered), len(seen))


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    manifests = [d for d in yaml.safe_load_all(TENANTS) if d]
    name = unique_name()
    probers: list[Prober] = []
    agent: AgentProcess | None = None
    with api_server(tmp_path, "tiers") as cluster:
        sandbox = Sandbox.up(inventory_of(TENANTS), name=name)
        try:
            publish_pods(admin(cluster), sandbox, manifests)
            agent = AgentProcess(
                agent_kubeconfig(cluster, tmp_path / "tiers.kubeconfig"),
                sandbox.state.node_netns,
                tmp_path / "tiers.log",
                extra=("--unsupported-protocol", "SCTP"),
            ).start()
            agent.wait_ready()
            web = str(sandbox.slot("red/web").ipv4)
            probers = [
                Prober(sandbox.slot("blue/client").netns, web, 80, interval=0.01),
                Prober(sandbox.slot("red/client").netns, web, 80, interval=0.01),
            ]
            for prober in probers:
                prober.start()
            yield Tenants(cluster, probers[0], probers[1], agent)
        finally:
            for prober in probers:
                prober.stop()
            if agent is not None:
                agent.stop()
            down(name)


def test_baseline_isolates_tenants_and_a_network_policy_cannot_override_admin_deny(
    tenants: Tenants,
) -> None:
    cluster = tenants.cluster
    returned = kubectl_apply(cluster, BASELINE)
    tenants.outcome(tenants.from_blue, False, returned)
    tenants.outcome(tenants.from_red, True, returned)
    returned = kubectl_apply(cluster, OPEN_WEB)
    tenants.outcome(tenants.from_blue, True, returned)  # NetworkPolicy isolates: no Baseline
    returned = kubectl_apply(cluster, ADMIN_DENY)
    tenants.outcome(tenants.from_blue, False, returned)  # Admin Deny comes first
    tenants.outcome(tenants.from_red, True, returned)
    returned = kubectl_delete(cluster, "clusternetworkpolicy", "deny-blue")
    tenants.outcome(tenants.from_blue, True, returned)
