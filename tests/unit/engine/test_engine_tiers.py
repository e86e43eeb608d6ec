"""The engine with admin tiers, one ClusterNetworkPolicy rule kind per test.

Why this module exists: the differential tests say the engine equals the reference with random
tiered policies; these pin the expected verdicts themselves for each thing the engine's tier
computation does on vectors (T01-T08 of ``docs/admin-tiers.md``), so a bug shared by both
executions, or a case random clusters rarely reach, still fails here. Every verdict is also
checked against ``decide``.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubefence.api import Inventory, Protocol
from kubefence.engine import (
    ReachabilityAnalysis,
    ReachabilityModel,
    compute_matrix,
    diff_inventories,
    mask_bits,
    port_classes,
    port_masks,
)
from kubefence.errors import InputError
from kubefence.semantics import Settings, decide
from kubefence.sources.objects import inventory_from_objects

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {tenant: red}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {tenant: blue}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web}}
spec:
  containers:
  - {name: c, image: i, ports: [{containerPort: 8080, name: http}]}
status: {podIP: 198.18.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: a, labels: {app: db}}
spec:
  containers:
  - {name: c, image: i, ports: [{containerPort: 5432, name: pg}]}
status: {podIP: 198.18.1.20}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: b, labels: {app: web}}
spec:
  containers:
  - {name: c, image: i, ports: [{containerPort: 80, name: http}]}
status: {podIP: 198.18.2.10}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: b}
spec: {hostNetwork: true, nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 198.19.255.1}
"""


def load(*documents: str) -> Inventory:
    objects: list[dict[str, Any]] = []
    for text in (PODS, *documents):
        objects += [d for d in yaml.safe_load_all(text) if d]
    return inventory_from_objects(objects)


def cnp(
    name: str,
    *,
    tier: str = "Admin",
    priority: int = 10,
    subject: dict[str, Any] | None = None,
    ingress: list[dict[str, Any]] | None = None,
    egress: list[dict[str, Any]] | None = None,
) -> str:
    spec: dict[str, Any] = {
        "tier": tier,
        "priority": priority,
        "subject": subject or {"namespaces": {}},
    }
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    document = {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    return yaml.safe_dump(document)


DENY_INGRESS_A = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: a}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""

ALLOW_INGRESS_A = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow, namespace: a}
spec: {podSelector: {}, ingress: [{}]}
"""

EVERYONE = [{"namespaces": {}}]
A_SUBJECT = {"namespaces": {"matchLabels": {"tenant": "red"}}}


def verdict(inv: Inventory, src: str, dst: str, port: int | str = 80, **kw: Any) -> bool:
    """The engine's answer, after checking it equals the reference's."""
    settings = kw.pop("settings", Settings())
    protocol = kw.pop("protocol", Protocol.TCP)
    got = compute_matrix(inv, port=port, protocol=protocol, settings=settings).allowed(src, dst)
    want = decide(inv, src, dst, port=port, protocol=protocol, settings=settings).allowed
    assert got == want, f"engine {got} != reference {want}: {src} -> {dst} on {port}"
    return got


def test_admin_deny_beats_a_network_policy_allow() -> None:
    inv = load(
        ALLOW_INGRESS_A,
        cnp("no-b", subject=A_SUBJECT, ingress=[{"action": "Deny", "from": EVERYONE}]),
    )
    assert not verdict(inv, "b/web", "a/web")
    assert not verdict(inv, "a/db", "a/web")
    assert verdict(inv, "a/web", "b/web")  # b is no subject; a's egress has no rule


def test_admin_accept_beats_a_network_policy_deny_on_its_side_only() -> None:
    """T01: an Admin Accept on the destination's ingress overrides NetworkPolicy there, but
    an Accept on the source's egress does not open the destination's ingress."""
    accept_in = cnp("in", subject=A_SUBJECT, ingress=[{"action": "Accept", "from": EVERYONE}])
    assert verdict(load(DENY_INGRESS_A, accept_in), "b/web", "a/web")
    accept_out = cnp(
        "out",
        subject={"namespaces": {"matchLabels": {"tenant": "blue"}}},
        egress=[{"action": "Accept", "to": EVERYONE}],
    )
    assert not verdict(load(DENY_INGRESS_A, accept_out), "b/web", "a/web")


def test_pass_leaves_the_admin_tier_and_network_policy_decides() -> None:
    policies = cnp(
        "pass-then-deny",
        subject=A_SUBJECT,
        ingress=[
            {"action": "Pass", "from": [{"namespaces": {"matchLabels": {"tenant": "blue"}}}]},
            {"action": "Deny", "from": EVERYONE},
        ],
    )
    later_accept = cnp(
        "later", priority=20, subject=A_SUBJECT, ingress=[{"action": "Accept", "from": EVERYONE}]
    )
    inv = load(DENY_INGRESS_A, policies, later_accept)
    assert not verdict(inv, "b/web", "a/web")  # passed: the NetworkPolicy deny holds
    assert not verdict(inv, "a/db", "a/web")  # the Deny rule after the Pass
    inv = load(ALLOW_INGRESS_A, policies, later_accept)
    assert verdict(inv, "b/web", "a/web")  # passed: the NetworkPolicy allow holds


def test_baseline_deny_is_overridden_by_a_network_policy_allow() -> None:
    baseline = cnp(
        "isolate",
        tier="Baseline",
        subject=A_SUBJECT,
        ingress=[{"action": "Deny", "from": EVERYONE}],
    )
    assert not verdict(load(baseline), "b/web", "a/web")
    assert verdict(load(baseline, ALLOW_INGRESS_A), "b/web", "a/web")
    # isolated by NetworkPolicy without an allowing rule: NetworkPolicy decides, not Baseline
    accept = cnp(
        "open", tier="Baseline", subject=A_SUBJECT, ingress=[{"action": "Accept", "from": EVERYONE}]
    )
    assert not verdict(load(accept, DENY_INGRESS_A), "b/web", "a/web")


def test_first_matching_rule_decides_in_written_order() -> None:
    inv = load(
        cnp(
            "ordered",
            subject=A_SUBJECT,
            ingress=[
                {
                    "action": "Accept",
                    "from": [
                        {
                            "pods": {
                                "namespaceSelector": {},
                                "podSelector": {"matchLabels": {"app": "db"}},
                            }
                        }
                    ],
                },
                {"action": "Deny", "from": EVERYONE},
            ],
        )
    )
    assert verdict(inv, "a/db", "a/web")
    assert not verdict(inv, "b/web", "a/web")


def test_equal_priorities_are_ordered_by_name() -> None:
    """T02: the same priority, so "alpha" (Accept) comes before "beta" (Deny) whatever the
    input order; with "alpha" at a worse priority, "beta" wins."""
    beta = cnp(
        "beta", priority=5, subject=A_SUBJECT, ingress=[{"action": "Deny", "from": EVERYONE}]
    )
    for alpha_priority, expected in ((5, True), (6, False)):
        alpha = cnp(
            "alpha",
            priority=alpha_priority,
            subject=A_SUBJECT,
            ingress=[{"action": "Accept", "from": EVERYONE}],
        )
        assert verdict(load(beta, alpha), "b/web", "a/web") is expected


def test_named_ports_resolve_at_the_destination() -> None:
    """T06: ``http`` is 8080 on a/web and 80 on b/web; a name never matches the hostNetwork
    pod's node (it is not a pod destination)."""
    inv = load(
        cnp(
            "no-http",
            subject={"namespaces": {}},
            ingress=[
                {
                    "action": "Deny",
                    "from": EVERYONE,
                    "protocols": [{"destinationNamedPort": "http"}],
                }
            ],
        )
    )
    assert not verdict(inv, "a/db", "a/web", 8080)
    assert verdict(inv, "a/db", "a/web", 80)
    assert not verdict(inv, "a/db", "b/web", 80)
    assert verdict(inv, "a/db", "b/web", 8080)
    assert not verdict(inv, "a/db", "a/web", "http")
    assert verdict(inv, "a/db", "a/web", "pg") is False  # a/web declares no "pg" (S21)


def test_port_numbers_and_ranges() -> None:
    inv = load(
        cnp(
            "ports",
            subject=A_SUBJECT,
            ingress=[
                {
                    "action": "Deny",
                    "from": EVERYONE,
                    "protocols": [
                        {"tcp": {"destinationPort": {"range": {"start": 5000, "end": 5999}}}},
                        {"udp": {"destinationPort": {"number": 53}}},
                    ],
                }
            ],
        )
    )
    for port, protocol, expected in (
        (5000, Protocol.TCP, False),
        (5999, Protocol.TCP, False),
        (6000, Protocol.TCP, True),
        (4999, Protocol.TCP, True),
        (5432, Protocol.UDP, True),
        (53, Protocol.UDP, False),
        (53, Protocol.TCP, True),
    ):
        assert verdict(inv, "b/web", "a/db", port, protocol=protocol) is expected, port


def test_networks_match_pod_ips() -> None:
    """T05: a CIDR matches pods whose IP is inside, hostNetwork pods included, whatever the
    ipBlock setting says about NetworkPolicy."""
    inv = load(
        cnp(
            "no-1-0",
            subject={"namespaces": {}},
            egress=[{"action": "Deny", "to": [{"networks": ["198.18.1.0/28"]}]}],
        ),
        cnp(
            "no-node",
            priority=11,
            subject={"namespaces": {}},
            egress=[{"action": "Deny", "to": [{"networks": ["198.19.255.0/24"]}]}],
        ),
    )
    assert not verdict(inv, "b/web", "a/web")  # 198.18.1.10
    assert verdict(inv, "b/web", "a/db")  # 198.18.1.20 is outside /28
    assert not verdict(inv, "a/web", "b/agent")
    for setting in (True, False):
        settings = Settings(ipblock_matches_pods=setting)
        assert not verdict(inv, "b/web", "a/web", settings=settings)


def test_nodes_peer_matches_host_network_pods_by_node_labels() -> None:
    node = """
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {zone: z1}}
"""
    deny = cnp(
        "no-z1",
        subject={"namespaces": {}},
        egress=[{"action": "Deny", "to": [{"nodes": {"matchLabels": {"zone": "z1"}}}]}],
    )
    assert not verdict(load(deny, node), "a/web", "b/agent")
    assert verdict(load(deny, node), "a/web", "b/web")
    # without the Node object its labels are unknown: not evaluated, counted as no match
    assert verdict(load(deny), "a/web", "b/agent")


def test_host_network_pods_and_self_traffic_are_never_affected() -> None:
    inv = load(
        cnp(
            "deny-all",
            subject={"namespaces": {}},
            ingress=[{"action": "Deny", "from": EVERYONE}],
            egress=[{"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}],
        )
    )
    assert not verdict(inv, "a/web", "b/web")
    assert verdict(inv, "b/agent", "b/agent")
    matrix = compute_matrix(inv, port=80)
    assert matrix.allowed("a/web", "a/web")  # S07: a pod to itself
    # The hostNetwork pod's egress is never a subject, and a namespaces peer never matches it.
    assert verdict(inv, "b/agent", "a/web", settings=Settings(allow_from_node=False))
    assert not verdict(inv, "a/web", "b/agent")  # a/web's own egress: networks hold its IP


def test_diff_port_classes_and_masks_see_tier_only_ports() -> None:
    """A port only a tiered policy names is its own port class; diff and audit's masks use it."""
    tiered = load(
        cnp(
            "no-7000",
            subject=A_SUBJECT,
            ingress=[
                {
                    "action": "Deny",
                    "from": EVERYONE,
                    "protocols": [{"tcp": {"destinationPort": {"number": 7000}}}],
                }
            ],
        )
    )
    plain = load()
    labels = [pc.label for pc in port_classes([tiered], protocols=[Protocol.TCP])]
    assert "7000" in labels
    changes = diff_inventories(plain, tiered).changes
    assert changes
    assert {c.port for c in changes} == {"7000"}
    assert all(not c.allowed and c.dst.startswith("a/") for c in changes)
    analysis = ReachabilityAnalysis(tiered)
    classes = port_classes([tiered], protocols=list(Protocol))
    masks = port_masks(analysis, classes)
    bits = mask_bits(len(classes))
    for k, pc in enumerate(classes):
        got = ((masks[:, :, k // bits] >> (k % bits)) & 1).astype(bool)
        assert (got == analysis.class_matrix(pc.port, pc.protocol)).all(), pc


def test_incremental_model_refuses_tiers() -> None:
    inv = load(cnp("x", ingress=[{"action": "Deny", "from": EVERYONE}]))
    with pytest.raises(InputError, match="admin tiers"):
        ReachabilityModel(inv, port=80)


def test_class_grouping_is_exact_even_when_row_hashes_collide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Groups of classes come from 64-bit row hashes; equal hashes of different rows must
    still give different groups (the byte-by-byte fallback)."""
    import numpy as np

    from kubefence.engine import _tier_bits

    key = np.array([[1, 2], [2, 1], [1, 2], [3, 0]], dtype=np.uint8)
    real = _tier_bits._weights()
    for weights in (real.copy(), np.ones_like(real)):  # ones: 1+2 == 2+1
        monkeypatch.setattr(_tier_bits, "_weights", lambda weights=weights: weights)
        group_of, first, member = _tier_bits.groups(key)
        assert group_of.tolist() == [0, 1, 0, 2]
        assert first.tolist() == [0, 1, 3]
        assert (np.packbits(member, axis=1)[:, :2] == key[first]).all()
