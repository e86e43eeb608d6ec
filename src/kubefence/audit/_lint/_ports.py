"""Lint check KF004: a named port that no candidate destination declares (S21).

Why this module exists: named ports resolve at the destination pod, by name and protocol, so
the candidates differ per direction (the selected pods for ingress, the peer pods for egress)
and a name towards ipBlock destinations never matches; that resolution is this check's alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kubefence.api import Pod, Protocol, port_label
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import LintContext, directions, port_path
from kubefence.semantics import Direction, PeerKind

__all__ = ["named_port_undeclared"]


def _declares(pods: Sequence[Pod], name: str, protocol: Protocol) -> bool:
    return any(cp.name == name and cp.protocol is protocol for p in pods for cp in p.ports)


def named_port_undeclared(ctx: LintContext) -> Iterator[Finding]:
    """KF004: a named port no candidate destination declares (S21)."""
    for compiled in ctx.compiled:
        for direction, rules in directions(compiled):
            for rule in rules:
                named = [m for m in rule.ports if m.name is not None]
                if not named:
                    continue
                if direction is Direction.INGRESS:
                    if not ctx.has_pods:
                        continue
                    candidates = ctx.selected_pods(compiled)
                    if not candidates:
                        continue  # KF002 reports the policy itself
                    where = f"the {len(candidates)} pod(s) this policy selects"
                else:
                    ip_only = all(p.kind is PeerKind.IP_BLOCK for p in rule.peers)
                    pods: dict[str, Pod] = {}
                    for peer in rule.peers:
                        pods.update((p.key, p) for p in ctx.peer_pods(peer))
                    candidates = list(pods.values())
                    if not candidates and not ip_only:
                        continue  # KF003 reports the peers (or the input has no pods)
                    where = (
                        "any pod covered by the ipBlock peers (a named port towards an "
                        "external address never matches)"
                        if ip_only
                        else f"the {len(candidates)} destination pod(s) of this rule"
                    )
                for matcher in named:
                    assert matcher.name is not None
                    assert matcher.protocol is not None
                    if _declares(candidates, matcher.name, matcher.protocol):
                        continue
                    path = port_path(direction, rule.index, matcher.index)
                    port = port_label(matcher.name, matcher.protocol.value)
                    yield ctx.finding(
                        "KF004",
                        f"{path}: named port {port} is declared by none of {where}; the entry "
                        "matches nothing",
                        policy=compiled.source,
                        path=path,
                    )
