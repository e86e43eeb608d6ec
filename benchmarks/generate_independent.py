"""A second cluster generator, written independently of ``benchmarks/generate.py``.

Why this module exists: a comparison with another tool on clusters from one generator measures
that generator's habits as much as the tools. This one has the same shape (by default 50
namespaces x 10 pods x 3 policies) but its own vocabulary and its own mix, so that agreement
and speed are checked on policies nobody tuned for: every namespace gets a default deny, a
same-namespace allow and one cross-namespace policy, drawn from namespaceSelectors across
tenants (matchLabels or matchExpressions), AND-peers (namespaceSelector with podSelector in one
peer), endPort ranges, named ports, ipBlocks with ``except`` (ingress and egress), and
egress restrictions. Pods are bare Pods with addresses in 198.18.0.0/15 only, so every tool
sees every pod. The same ``seed`` always yields the same objects, in the same order.

    from benchmarks.generate_independent import independent_cluster
    objects = independent_cluster(namespaces=50, pods_per_namespace=10, seed=7)
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

__all__ = ["independent_cluster"]

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
STAGES = ("live", "preview", "sandbox")
OWNERS = ("team-a", "team-b", "team-c")
ROLES = {
    # role: its container ports (name, number, protocol)
    "gateway": [("https", 8443, "TCP"), ("admin", 9901, "TCP")],
    "service": [("rpc", 7000, "TCP"), ("telemetry", 9100, "TCP")],
    "store": [("sql", 3306, "TCP")],
    "broker": [("mq", 4222, "TCP"), ("gossip", 6222, "UDP")],
    "resolver": [("dns-udp", 53, "UDP"), ("dns-tcp", 53, "TCP")],
}
NETWORK = ipaddress.ip_network("198.18.0.0/15")
_PODS = ipaddress.ip_network("198.18.0.0/16")  # pod addresses; 198.19.0.0/16 is "outside"


def _labels(rng: random.Random, role: str) -> dict[str, str]:
    labels = {"role": role, "track": rng.choice(("stable", "canary"))}
    if rng.random() < 0.5:
        labels["owner"] = rng.choice(OWNERS)
    return labels


def _pod(ns: str, index: int, serial: int, rng: random.Random) -> dict[str, Any]:
    role = rng.choice(sorted(ROLES))
    address = _PODS.network_address + 2 + serial
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{role}-{index:02d}", "namespace": ns, "labels": _labels(rng, role)},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": f"images.invalid/{role}:1",
                    "ports": [
                        {"name": name, "containerPort": number, "protocol": protocol}
                        for name, number, protocol in ROLES[role]
                    ],
                }
            ]
        },
        "status": {"phase": "Running", "podIP": str(address)},
    }


def _namespace(name: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "tenant": TENANTS[index % len(TENANTS)],
                "stage": STAGES[(index // len(TENANTS)) % len(STAGES)],
            },
        },
    }


def _policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _port_entry(rng: random.Random) -> list[dict[str, Any]]:
    """A rule's ports: a named port, a number, an endPort range, or several protocols."""
    choice = rng.randrange(5)
    if choice == 0:
        return [{"port": rng.choice(("https", "rpc", "sql", "mq", "telemetry"))}]
    if choice == 1:
        return [{"protocol": "TCP", "port": rng.choice((3306, 4222, 7000, 8443))}]
    if choice == 2:
        low = rng.choice((7000, 9000, 8400))
        return [{"protocol": "TCP", "port": low, "endPort": low + rng.choice((100, 1000))}]
    if choice == 3:
        return [{"protocol": "UDP", "port": "gossip"}, {"protocol": "TCP", "port": 4222}]
    return []  # every port


def _block(rng: random.Random) -> dict[str, Any]:
    """An ipBlock inside 198.18.0.0/15 with one or two holes."""
    prefix = rng.choice((17, 20, 22))
    subnets = list(NETWORK.subnets(new_prefix=prefix))
    cidr = subnets[rng.randrange(len(subnets) // 2)]  # within the pods' /16 most of the time
    holes = list(cidr.subnets(new_prefix=prefix + 3))
    excepted = sorted({str(rng.choice(holes)) for _ in range(rng.randint(1, 2))})
    return {"ipBlock": {"cidr": str(cidr), "except": excepted}}


def _cross_namespace_peer(rng: random.Random, *, exists: bool) -> dict[str, Any]:
    choice = rng.randrange(4)
    if choice == 0:  # another tenant, by label
        return {"namespaceSelector": {"matchLabels": {"tenant": rng.choice(TENANTS)}}}
    if choice == 1:  # several tenants, by expression, AND a pod selector (one peer)
        return {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "tenant", "operator": "In", "values": sorted(rng.sample(TENANTS, 2))}
                ]
            },
            "podSelector": {"matchLabels": {"role": rng.choice(sorted(ROLES))}},
        }
    if choice == 2:  # every namespace but one stage, pods with an owner
        return {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "stage", "operator": "NotIn", "values": [rng.choice(STAGES)]}
                ]
            },
            "podSelector": {"matchExpressions": [_has_owner(exists=exists)]},
        }
    return _block(rng)


def _has_owner(*, exists: bool) -> dict[str, Any]:
    """``owner Exists``, or (``exists=False``) the same set of pods as ``owner In`` every owner
    a pod can have: network-config-analyzer 2.1.0 reads the first form wrongly inside a peer
    that also has a namespaceSelector (benchmarks/vs_nca.py)."""
    if exists:
        return {"key": "owner", "operator": "Exists"}
    return {"key": "owner", "operator": "In", "values": list(OWNERS)}


def _target(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.6:
        return {"matchLabels": {"role": rng.choice(sorted(ROLES))}}
    return {
        "matchExpressions": [
            {"key": "role", "operator": "In", "values": sorted(rng.sample(sorted(ROLES), 2))},
            {"key": "track", "operator": rng.choice(("In", "NotIn")), "values": ["canary"]},
        ]
    }


def _namespace_policies(ns: str, rng: random.Random, *, exists: bool) -> list[dict[str, Any]]:
    """Three policies: a default deny, a same-namespace allow, a cross-namespace one."""
    deny_types = rng.choice((["Ingress"], ["Ingress"], ["Ingress", "Egress"]))
    deny = _policy(ns, "default-deny", {"podSelector": {}, "policyTypes": deny_types})
    same = _policy(
        ns,
        "allow-same-namespace",
        {
            "podSelector": _target(rng),
            "ingress": [{"from": [{"podSelector": {}}], "ports": _port_entry(rng)}],
        },
    )
    if "Egress" in deny_types:
        same["spec"]["egress"] = [{"to": [{"podSelector": {}}]}]
        same["spec"]["policyTypes"] = ["Ingress", "Egress"]
    if rng.random() < 0.7:
        cross = _policy(
            ns,
            "allow-cross-namespace",
            {
                "podSelector": _target(rng),
                "ingress": [
                    {
                        "from": [
                            _cross_namespace_peer(rng, exists=exists)
                            for _ in range(rng.randint(1, 2))
                        ],
                        "ports": _port_entry(rng),
                    }
                ],
            },
        )
    else:
        cross = _policy(
            ns,
            "restrict-egress",
            {
                "podSelector": _target(rng),
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [_block(rng)], "ports": _port_entry(rng)},
                    {"to": [_cross_namespace_peer(rng, exists=exists)]},
                ],
            },
        )
    return [deny, same, cross]


def independent_cluster(
    *, namespaces: int = 50, pods_per_namespace: int = 10, seed: int = 7, exists: bool = True
) -> list[dict[str, Any]]:
    """Namespaces, bare pods and exactly three policies per namespace, deterministic per seed.
    ``exists=False`` writes each ``owner Exists`` requirement as the equivalent ``owner In``
    (the same random choices otherwise, so the same cluster)."""
    if namespaces * pods_per_namespace + 2 > _PODS.num_addresses:
        raise ValueError("too many pods for 198.18.0.0/16")
    rng = random.Random(seed)
    names = [f"tenant-{i:03d}" for i in range(namespaces)]
    objects: list[dict[str, Any]] = [_namespace(n, i) for i, n in enumerate(names)]
    serial = 0
    for ns in names:
        for index in range(pods_per_namespace):
            objects.append(_pod(ns, index, serial, rng))
            serial += 1
    for ns in names:
        objects.extend(_namespace_policies(ns, rng, exists=exists))
    return objects
