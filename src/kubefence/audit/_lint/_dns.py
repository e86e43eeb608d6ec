"""Lint check KF005: pods isolated for egress with no rule allowing DNS.

Why this module exists: default-deny egress without a DNS allowance is the most common way a
policy rollout breaks a namespace. The check asks the compiled matchers whether some egress rule
of the policies isolating each pod (``isolating_policies``) admits 53/UDP to kube-dns (the pods
in the input, or a stand-in with the usual labels and ports) or to NodeLocal DNS.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kubefence.api import ContainerPort, Inventory, Labels, LabelSelector, Operator, Pod, Protocol
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import LintContext
from kubefence.semantics import (
    CompiledPolicy,
    CompiledRule,
    Direction,
    isolating_policies,
    peer_matches_ip,
    peer_matches_pod,
    port_matches,
    selector_matches,
)

__all__ = ["egress_without_dns"]

_DNS_PORT = 53
_DNS_NAMESPACE = "kube-system"
_DNS_LABELS = Labels({"k8s-app": "kube-dns"})


def _synthetic_pod(compiled: CompiledPolicy) -> Pod:
    """A pod the policy would select, for checks on inputs that hold policies but no pods."""
    labels = dict(compiled.pod_selector.match_labels)
    for req in compiled.pod_selector.match_expressions:
        if req.operator is Operator.IN and req.key not in labels:
            labels[req.key] = req.values[0]
        elif req.operator is Operator.EXISTS and req.key not in labels:
            labels[req.key] = "x"
    return Pod(namespace=compiled.namespace, name="(any selected pod)", labels=Labels(labels))


def _dns_targets(inventory: Inventory) -> list[Pod]:
    found = [
        p
        for p in inventory.pods_by_namespace.get(_DNS_NAMESPACE, ())
        if selector_matches(LabelSelector(match_labels=_DNS_LABELS), p.labels)
    ]
    if found:
        return found
    return [
        Pod(
            namespace=_DNS_NAMESPACE,
            name="kube-dns",
            labels=_DNS_LABELS,
            ports=(
                ContainerPort(_DNS_PORT, Protocol.UDP, "dns"),
                ContainerPort(_DNS_PORT, Protocol.TCP, "dns-tcp"),
                ContainerPort(9153, Protocol.TCP, "metrics"),
            ),
        )
    ]


def _rule_allows_dns(ctx: LintContext, rule: CompiledRule, targets: Sequence[Pod]) -> bool:
    inv = ctx.inventory
    settings = ctx.options.settings
    for target in targets:
        if any(
            peer_matches_pod(p, target, inv.namespace_labels(target.namespace), settings=settings)
            for p in rule.peers
        ) and any(port_matches(m, _DNS_PORT, Protocol.UDP, target.ports) for m in rule.ports):
            return True
    for address in ctx.options.node_local_dns:
        if any(peer_matches_ip(p, address) for p in rule.peers) and any(
            port_matches(m, _DNS_PORT, Protocol.UDP, None) for m in rule.ports
        ):
            return True
    return False


def egress_without_dns(ctx: LintContext) -> Iterator[Finding]:
    """KF005: egress-isolated pods with no rule allowing 53/UDP to kube-dns or NodeLocal DNS."""
    targets = _dns_targets(ctx.inventory)
    settings = ctx.options.settings
    reported: set[str] = set()  # pods already reported, so each is named by one policy only
    # the egress policies of a namespace that select a pod depend only on its labels and
    # hostNetwork: decided once per (namespace, labels, hostNetwork)
    isolating: dict[tuple[str, Labels, bool], tuple[CompiledPolicy, ...]] = {}
    # Broadest first: a default deny (podSelector {}) is where the DNS rule belongs.
    ordered = sorted(ctx.compiled, key=lambda c: (not c.pod_selector.is_empty, c.namespace, c.name))
    for compiled in ordered:
        if compiled.egress is None:
            continue
        synthetic = not ctx.inventory.pods_by_namespace.get(compiled.namespace)
        pods = [_synthetic_pod(compiled)] if synthetic else ctx.selected_pods(compiled)
        blind: list[str] = []
        for pod in pods:
            if pod.key in reported:
                continue
            shape = (compiled.namespace, pod.labels, pod.host_network)
            found = isolating.get(shape)
            if found is None:
                found = isolating[shape] = tuple(
                    isolating_policies(
                        ctx.index.policies_in(compiled.namespace),
                        pod,
                        Direction.EGRESS,
                        settings=settings,
                    )
                )
            policies = list(found)
            if synthetic and compiled not in policies:
                policies.append(compiled)  # the synthetic pod may miss NotIn/DoesNotExist terms
            if not any(
                _rule_allows_dns(ctx, rule, targets) for c in policies for rule in c.egress or ()
            ):
                blind.append(pod.name)
                reported.add(pod.key)
        if not blind:
            continue
        who = (
            "the pods it selects"
            if synthetic
            else f"{len(blind)} pod(s) ({', '.join(blind[:3])}{', ...' if len(blind) > 3 else ''})"
        )
        yield ctx.finding(
            "KF005",
            f"isolates {who} for egress, and no egress rule selecting them allows 53/UDP to "
            f"kube-dns ({_DNS_NAMESPACE}, k8s-app=kube-dns) or NodeLocal DNS "
            f"({', '.join(str(a) for a in ctx.options.node_local_dns)}): name resolution fails",
            policy=compiled.source,
            path=next(
                (p for p in ("spec.policyTypes", "spec.egress") if p in compiled.source.lines),
                "spec.podSelector",
            ),
        )
