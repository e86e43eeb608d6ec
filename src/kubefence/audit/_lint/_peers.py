"""Lint checks on how peers are written: KF001 (the AND/OR list-item trap, S13) and KF008
(``namespaceSelector: {}`` with a podSelector any tenant can satisfy, S14).

Why this module exists: both are purely syntactic mistakes in a from/to list, visible without
pods, and both are about which namespaces a peer really admits.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubefence.audit._common import describe_selector
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import (
    LintContext,
    directions,
    list_field,
    peer_path,
    rule_path_of,
)
from kubefence.semantics import Direction, PeerKind

__all__ = ["and_or_near_miss", "spoofable_namespace_selector"]


def and_or_near_miss(ctx: LintContext) -> Iterator[Finding]:
    """KF001: a namespaceSelector-only item next to a podSelector-only item in one list."""
    for compiled in ctx.compiled:
        policy = compiled.source
        for direction, rules in directions(compiled):
            source_rules = policy.ingress if direction is Direction.INGRESS else policy.egress
            for rule in rules:
                peers = source_rules[rule.index].peers
                ns_only = [
                    i
                    for i, p in enumerate(peers)
                    if p.ip_block is None
                    and p.namespace_selector is not None
                    and p.pod_selector is None
                ]
                pod_only = [
                    i
                    for i, p in enumerate(peers)
                    if p.ip_block is None
                    and p.pod_selector is not None
                    and p.namespace_selector is None
                ]
                if not ns_only or not pod_only:
                    continue
                i, j = ns_only[0], pod_only[0]
                ns_sel = describe_selector(peers[i].namespace_selector)
                pod_sel = describe_selector(peers[j].pod_selector)
                list_path = f"{rule_path_of(direction, rule.index)}.{list_field(direction)}"
                yield ctx.finding(
                    "KF001",
                    f"{list_path}[{i}] (namespaceSelector {ns_sel}) and [{j}] (podSelector "
                    f"{pod_sel}) are separate items, so they are ORed: every pod of namespaces "
                    f"{ns_sel}, plus pods {pod_sel} of namespace {policy.namespace}. The AND "
                    f"('pods {pod_sel} in namespaces {ns_sel}') needs them in one item.",
                    policy=policy,
                    path=peer_path(direction, rule.index, i),
                )


def spoofable_namespace_selector(ctx: LintContext) -> Iterator[Finding]:
    """KF008: ``namespaceSelector: {}`` AND a podSelector with labels: any tenant can match."""
    for compiled in ctx.compiled:
        for direction, rules in directions(compiled):
            for rule in rules:
                for peer in rule.peers:
                    if (
                        peer.kind is PeerKind.PODS
                        and peer.namespace_selector is not None
                        and peer.namespace_selector.is_empty
                        and peer.pod_selector is not None
                        and not peer.pod_selector.is_empty
                    ):
                        path = peer_path(direction, rule.index, peer.index)
                        yield ctx.finding(
                            "KF008",
                            f"{path}: namespaceSelector {{}} with podSelector "
                            f"{describe_selector(peer.pod_selector)} admits such pods from every "
                            "namespace; any tenant can label a pod to match",
                            policy=compiled.source,
                            path=path,
                        )
