"""Isolation policies for a namespace, as manifest objects ready for ``kubectl apply``.

Why this module exists: the fix for most audit findings is the same small set of policies
(default deny, allow within the namespace, DNS, named allowances), and hand-written copies are
where the AND/OR trap and DNS-less egress isolation come from. Generating them from one template
keeps them correct; the output is plain manifest dicts, so the loader validates them like any
other input and the CLI only serialises them.

Generated per namespace (names prefixed ``kubefence-``):

| policy               | when                         | effect                                    |
|----------------------|------------------------------|-------------------------------------------|
| default-deny         | always                       | isolates every pod (Ingress; and Egress   |
|                      |                              | with ``egress``)                          |
| allow-same-namespace | always                       | pods of the namespace reach each other    |
| allow-dns            | ``allow_dns`` and ``egress`` | 53/UDP, 53/TCP to kube-dns, NodeLocal DNS |
| allow-from-<ns>      | each ``allow_from``          | every pod of <ns> may connect in          |

DNS is only restricted by egress isolation, so ``allow_dns`` without ``egress`` adds nothing.
Namespaces are named through ``kubernetes.io/metadata.name``, which the API server sets and no
tenant can forge (S16).

``tier="Baseline"`` generates the same isolation as ClusterNetworkPolicies of the Baseline tier
instead (``kubefence-isolate-<ns>``, one per namespace; tenants' own NetworkPolicies override
them, T01): ingress Accept from the namespace and each ``allow_from``, then Deny from every
pod; with ``egress``, Accept to the namespace (and DNS), then Deny to every pod and every
address. It has to be one object per namespace: a tiered rule's verdict depends only on the
peer and port, never on which subject is asked, so one policy whose subjects are namespaces A
and B gives A and B the same ingress verdict on traffic from A; allowing A -> A then allows
A -> B. (Ingress peers cannot name addresses: traffic from outside the cluster stays as it was.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from kubefence.api import METADATA_NAME_LABEL, IPAddress
from kubefence.audit._common import NODE_LOCAL_DNS

__all__ = ["GENERATED_BY", "isolation_policies"]

GENERATED_BY = {"app.kubernetes.io/managed-by": "kubefence"}


def _policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"kubefence-{name}", "namespace": namespace, "labels": GENERATED_BY},
        "spec": spec,
    }


def _dns_ports() -> list[dict[str, Any]]:
    return [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def _namespace_peer(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {METADATA_NAME_LABEL: name}}}


def isolation_policies(
    namespaces: Sequence[str],
    *,
    allow_dns: bool = False,
    egress: bool = False,
    allow_from: Sequence[str] = (),
    node_local_dns: Sequence[IPAddress] = (NODE_LOCAL_DNS,),
    tier: Literal["NetworkPolicy", "Baseline"] = "NetworkPolicy",
    priority: int = 1000,
) -> list[dict[str, Any]]:
    """NetworkPolicy manifests isolating each namespace; see the module table. ``tier``
    "Baseline": Baseline ClusterNetworkPolicies at ``priority`` instead (module docstring)."""
    if tier == "Baseline":
        return [
            _baseline(
                ns,
                allow_dns=allow_dns,
                egress=egress,
                allow_from=allow_from,
                node_local_dns=node_local_dns,
                priority=priority,
            )
            for ns in dict.fromkeys(namespaces)
        ]
    out: list[dict[str, Any]] = []
    types = ["Ingress", "Egress"] if egress else ["Ingress"]
    for ns in dict.fromkeys(namespaces):
        out.append(_policy(ns, "default-deny", {"podSelector": {}, "policyTypes": list(types)}))
        same: dict[str, Any] = {
            "podSelector": {},
            "policyTypes": list(types),
            "ingress": [{"from": [{"podSelector": {}}]}],
        }
        if egress:
            same["egress"] = [{"to": [{"podSelector": {}}]}]
        out.append(_policy(ns, "allow-same-namespace", same))
        if allow_dns and egress:
            rules: list[dict[str, Any]] = [
                {
                    "to": [
                        {
                            **_namespace_peer("kube-system"),
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": _dns_ports(),
                }
            ]
            if node_local_dns:
                rules.append(
                    {
                        "to": [
                            {"ipBlock": {"cidr": f"{a}/{a.max_prefixlen}"}} for a in node_local_dns
                        ],
                        "ports": _dns_ports(),
                    }
                )
            out.append(
                _policy(
                    ns, "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": rules}
                )
            )
        for other in dict.fromkeys(allow_from):
            if other == ns:
                continue  # already allowed by allow-same-namespace
            out.append(
                _policy(
                    ns,
                    f"allow-from-{other}",
                    {
                        "podSelector": {},
                        "policyTypes": ["Ingress"],
                        "ingress": [{"from": [_namespace_peer(other)]}],
                    },
                )
            )
    return out


def _cnp_namespace(name: str) -> dict[str, Any]:
    return {"namespaces": {"matchLabels": {METADATA_NAME_LABEL: name}}}


def _baseline(
    namespace: str,
    *,
    allow_dns: bool,
    egress: bool,
    allow_from: Sequence[str],
    node_local_dns: Sequence[IPAddress],
    priority: int,
) -> dict[str, Any]:
    """One Baseline ClusterNetworkPolicy isolating ``namespace`` (module docstring)."""
    every_pod: dict[str, Any] = {"namespaces": {}}
    sources = [namespace, *(o for o in dict.fromkeys(allow_from) if o != namespace)]
    ingress: list[dict[str, Any]] = [
        {"name": "same-namespace", "action": "Accept", "from": [_cnp_namespace(namespace)]}
    ]
    ingress += [
        {"name": f"from-{o}", "action": "Accept", "from": [_cnp_namespace(o)]} for o in sources[1:]
    ]
    ingress.append({"name": "other-namespaces", "action": "Deny", "from": [every_pod]})
    spec: dict[str, Any] = {
        "tier": "Baseline",
        "priority": priority,
        "subject": _cnp_namespace(namespace),
        "ingress": ingress,
    }
    if egress:
        rules: list[dict[str, Any]] = [
            {"name": "same-namespace", "action": "Accept", "to": [_cnp_namespace(namespace)]}
        ]
        if allow_dns:
            dns_ports = [{proto: {"destinationPort": {"number": 53}}} for proto in ("udp", "tcp")]
            peers: list[dict[str, Any]] = [
                {
                    "pods": {
                        "namespaceSelector": {"matchLabels": {METADATA_NAME_LABEL: "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                }
            ]
            if node_local_dns:
                peers.append({"networks": [f"{a}/{a.max_prefixlen}" for a in node_local_dns]})
            rules.append({"name": "dns", "action": "Accept", "to": peers, "protocols": dns_ports})
        rules.append(
            {
                "name": "elsewhere",
                "action": "Deny",
                "to": [every_pod, {"networks": ["0.0.0.0/0", "::/0"]}],
            }
        )
        spec["egress"] = rules
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": f"kubefence-isolate-{namespace}", "labels": GENERATED_BY},
        "spec": spec,
    }
