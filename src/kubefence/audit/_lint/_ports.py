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


def _holders(pods: Sequence[Pod]) -> dict[tuple[str | None, Protocol], set[int]]:
    """(port name, protocol) -> the pods declaring it, by identity: a group of candidates
    (the context's ``selected_pods``/``peer_pods``, the inventory's own pod objects) declares
    a name when it shares a pod with that set (a set operation, not a scan of every port of
    every candidate per rule)."""
    found: dict[tuple[str | None, Protocol], set[int]] = {}
    for pod in pods:
        for cp in pod.ports:
            found.setdefault((cp.name, cp.protocol), set()).add(id(pod))
    return found


def named_port_undeclared(ctx: LintContext) -> Iterator[Finding]:
    """KF004: a named port no candidate destination declares (S21)."""
    holders = _holders(ctx.inventory.pods)
    nobody: set[int] = set()
    for compiled in ctx.compiled:
        for direction, rules in directions(compiled):
            for rule in rules:
                named = [m for m in rule.ports if m.name is not None]
                if not named:
                    continue
                ip_only = False
                if direction is Direction.INGRESS:
                    if not ctx.has_pods:
                        continue
                    selected = ctx.selected_pods(compiled)
                    if not selected:
                        continue  # KF002 reports the policy itself
                    groups = [selected]
                else:
                    ip_only = all(p.kind is PeerKind.IP_BLOCK for p in rule.peers)
                    groups = [ctx.peer_pods(peer) for peer in rule.peers]
                    if not any(groups) and not ip_only:
                        continue  # KF003 reports the peers (or the input has no pods)
                for matcher in named:
                    assert matcher.name is not None
                    assert matcher.protocol is not None
                    declaring = holders.get((matcher.name, matcher.protocol), nobody)
                    if any(not declaring.isdisjoint(map(id, g)) for g in groups):
                        continue
                    path = port_path(direction, rule.index, matcher.index)
                    port = port_label(matcher.name, matcher.protocol.value)
                    yield ctx.finding(
                        "KF004",
                        f"{path}: named port {port} is declared by none of "
                        f"{_candidates(direction, groups, ip_only=ip_only)}; the entry "
                        "matches nothing",
                        policy=compiled.source,
                        path=path,
                    )


def _candidates(direction: Direction, groups: list[tuple[Pod, ...]], *, ip_only: bool) -> str:
    """The candidates a finding names (counted only for a finding)."""
    if direction is Direction.INGRESS:
        return f"the {len(groups[0])} pod(s) this policy selects"
    if ip_only:
        return (
            "any pod covered by the ipBlock peers (a named port towards an external address "
            "never matches)"
        )
    return f"the {len({p.key for g in groups for p in g})} destination pod(s) of this rule"
