"""A ``Decision`` as text for people and as JSON for scripts.

Why this module exists: decisions are data (``kubefence.semantics``) and text is produced only
in ``cli``. ``kubefence explain``, ``kubefence.testing`` (assertion messages) and anything else
that shows a verdict use these two functions, so an explanation reads the same everywhere.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from typing import Any

from kubefence.api import Operator
from kubefence.semantics import (
    Admission,
    Decision,
    Direction,
    Endpoint,
    EndpointKind,
    MissReason,
    PeerMiss,
    PolicyMiss,
    PolicyRef,
    PortEntry,
    Reason,
    RuleMiss,
    SideDecision,
    TierRule,
    Unevaluated,
    Unmet,
)

__all__ = ["decision_to_json", "render_text"]

_INDENT = "  "


# --- JSON ----------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name.rstrip("_"): _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def decision_to_json(decision: Decision) -> dict[str, Any]:
    """Every field of the decision, enums as their values, addresses and networks as strings;
    plus ``verdict`` ("allow"/"deny") and, for each policy miss, ``nearest_rule``."""
    data: dict[str, Any] = {"verdict": "allow" if decision.allowed else "deny"}
    data.update(_jsonable(decision))
    for side_name, side in (("egress", decision.egress), ("ingress", decision.ingress)):
        if side is None:
            continue
        for miss_json, miss in zip(data[side_name]["misses"], side.misses, strict=True):
            nearest = miss.nearest
            miss_json["nearest_rule"] = nearest.rule if nearest else None
    data["backends"] = [decision_to_json(b) for b in decision.backends]
    return data


# --- text ----------------------------------------------------------------------------------------


def _where(file: str | None, line: int | None) -> str:
    """`` (file:line)`` when the source is known; objects built in code have no line (0)."""
    if file is None or not line:
        return ""
    return f" ({file}:{line})"


def _policy(ref: PolicyRef) -> str:
    return f"{ref.key}{_where(ref.file, ref.line)}"


def _port(decision: Decision) -> str:
    if decision.port_name is None:
        return f"{decision.port}/{decision.protocol.value}"
    resolved = f" (= {decision.port})" if decision.port is not None else ""
    return f"{decision.port_name}/{decision.protocol.value}{resolved}"


def _entry(entry: PortEntry, *, to_pod: bool) -> str:
    if entry.protocol is None:
        return "any port"
    proto = entry.protocol.value
    if entry.name is not None:
        if entry.resolved is not None:
            return f"{entry.name}/{proto} (= {entry.resolved} at the destination)"
        if to_pod:
            return f"{entry.name}/{proto} (not declared by the destination)"
        return f"{entry.name}/{proto} (a name never matches a destination that is not a pod)"
    if entry.low is None:
        return f"every {proto} port"
    if entry.high is not None and entry.high != entry.low:
        return f"{entry.low}-{entry.high}/{proto}"
    return f"{entry.low}/{proto}"


def _requirement(unmet: Unmet) -> str:
    values = ", ".join(unmet.values)
    if unmet.operator is Operator.IN:
        return f"{unmet.key}={values}" if len(unmet.values) == 1 else f"{unmet.key} in ({values})"
    if unmet.operator is Operator.NOT_IN:
        return f"{unmet.key} not in ({values})"
    if unmet.operator is Operator.EXISTS:
        return f"{unmet.key} (any value)"
    return f"{unmet.key} to be absent"


def _unmet(kind: str, owner: str, unmet: Unmet) -> str:
    has = "has none" if unmet.actual is None else f"has {unmet.key}={unmet.actual}"
    return f"needs {kind} label {_requirement(unmet)}; {owner} {has}"


def _peer_miss(miss: PeerMiss) -> str:
    head = f"peer {miss.index}"
    reason = miss.reason
    if reason is MissReason.NOT_A_POD:
        return f"{head} selects pods; {miss.subject} is not a pod"
    if reason is MissReason.HOST_NETWORK:
        return (
            f"{head} selects pods; {miss.subject} is a hostNetwork pod, which acts as its "
            "node's address (S23)"
        )
    if reason is MissReason.OTHER_NAMESPACE:
        return (
            f"{head} selects pods of namespace {miss.expected_namespace} only (podSelector "
            f"without namespaceSelector); {miss.subject} is in namespace {miss.namespace}"
        )
    if reason is MissReason.LABELS:
        parts = [
            _unmet("namespace", f"namespace {miss.namespace}", u) for u in miss.namespace_unmet
        ]
        parts += [_unmet("pod", f"pod {miss.subject}", u) for u in miss.pod_unmet]
        return f"{head} " + "; and ".join(parts)
    block = f"{head} is ipBlock {miss.cidr}"
    if reason is MissReason.NO_ADDRESS:
        return f"{block}; {miss.subject} has no known IP"
    if reason is MissReason.IN_EXCEPT:
        return f"{block}; {miss.address} is inside its except range {miss.except_}"
    if reason is MissReason.IPBLOCK_IGNORES_PODS:
        return f"{block}; ipBlocks do not match pods with setting ipblock_matches_pods off"
    return f"{block}; {miss.address} is outside it"


def _rule_miss(policy: PolicyRef, rule: RuleMiss, *, to_pod: bool) -> list[str]:
    head = f"rule {rule.rule}{_where(policy.file, rule.line)}"
    ports = ", ".join(_entry(e, to_pod=to_pod) for e in rule.ports)
    if rule.peer_matched:
        return [f"{head} matches the peer but only port {ports}"]
    lines = []
    if rule.port_matched:
        lines.append(f"{head} allows the port but no peer matches:")
    else:
        lines.append(f"{head} matches neither the peer nor the port (only {ports}):")
    lines += [f"{_INDENT}{_peer_miss(p)}" for p in rule.peers]
    return lines


def _policy_miss(
    miss: PolicyMiss, direction: Direction, *, to_pod: bool, verbose: bool = False
) -> list[str]:
    head = f"{_policy(miss.policy)}"
    nearest = miss.nearest
    if nearest is None:
        return [f"{head}: no {direction.value} rules, so it allows nothing"]
    if verbose:  # every rule, each with every port entry and whether it matched
        count = len(miss.rules)
        lines = [f"{head}: {count} rule{'s' if count != 1 else ''}, none allows it:"]
        for rule in miss.rules:
            lines += [f"{_INDENT}{line}" for line in _rule_miss(miss.policy, rule, to_pod=to_pod)]
            lines.append(f"{_INDENT * 2}ports: {_entries_marked(rule.ports, to_pod=to_pod)}")
        return lines
    others = len(miss.rules) - 1
    suffix = f" (nearest of {len(miss.rules)} rules)" if others else ""
    lines = [f"{head}{suffix}:"]
    lines += [f"{_INDENT}{line}" for line in _rule_miss(miss.policy, nearest, to_pod=to_pod)]
    return lines


def _entries_marked(entries: tuple[PortEntry, ...], *, to_pod: bool) -> str:
    """``80/TCP (matches), 443/TCP (no)``: each port entry of a rule and its verdict."""
    return ", ".join(
        f"{_entry(e, to_pod=to_pod)} ({'matches' if e.matched else 'no'})" for e in entries
    )


def _admission(admission: Admission) -> str:
    peer = "any peer" if admission.peer < 0 else f"peer {admission.peer}"
    port = "any port" if admission.port < 0 else f"port entry {admission.port}"
    where = _where(admission.policy.file, admission.line)
    return f"{admission.policy.key} rule {admission.rule}{where}: {peer}, {port}"


_NOT_APPLICABLE = {
    EndpointKind.EXTERNAL: "an address outside the cluster's pods; no policy applies here (S05)",
    EndpointKind.NODE: "a node; no policy applies here (S05, S23)",
    EndpointKind.HOST_NETWORK_POD: "a hostNetwork pod; policies do not select it (S23)",
    EndpointKind.SERVICE: "a Service; policies apply to its backends (S22)",
    EndpointKind.POD: "not evaluated",
}


def _tier_rule(rule: TierRule) -> str:
    """``ClusterNetworkPolicy tenants (Baseline, priority 10) rule 1 'other' (f:12): peer 0,
    protocols entry 1``."""
    priority = "" if rule.priority is None else f", priority {rule.priority}"
    name = f" {rule.rule_name!r}" if rule.rule_name else ""
    entries = "protocols" if rule.kind == "ClusterNetworkPolicy" else "ports"
    port = "any port" if rule.port < 0 else f"{entries} entry {rule.port}"
    return (
        f"{rule.kind} {rule.policy} ({rule.tier}{priority}) rule {rule.rule}{name}"
        f"{_where(rule.file, rule.line)}: peer {rule.peer}, {port}"
    )


_NEXT_TIER = {"Admin": "the NetworkPolicy tier", "Baseline": "the default (allow)"}


def _unevaluated(item: Unevaluated) -> str:
    return (
        f"note: {item.kind} {item.policy} rule {item.rule} peer {item.peer} ({item.peer_kind}) "
        f"not evaluated: {item.why}; treated as not matching"
    )


def _tiered(side: SideDecision, head: str, lines: list[str]) -> list[str]:
    """The tier that decided a side, the Pass rules before it, and unevaluated peers; ``lines``
    are the NetworkPolicy tier's own lines (used when it decided)."""
    rule = side.tier_rule
    verdict = "allowed" if side.allowed else "denied"
    passes = [
        f"{_INDENT}{p.tier} tier passes it to {_NEXT_TIER[p.tier]}: {_tier_rule(p)}"
        for p in side.passed
    ]
    notes = [f"{_INDENT}{_unevaluated(u)}" for u in side.unevaluated]
    if side.tier == "Admin" and rule is not None:
        return [
            f"{head}: Admin tier, {rule.action} ({verdict}) by",
            f"{_INDENT}{_tier_rule(rule)}",
            *notes,
        ]
    if side.tier == "NetworkPolicy":
        return [lines[0], *passes, *lines[1:], *notes]
    direction = side.direction.value
    if side.tier == "Baseline" and rule is not None:
        return [
            f"{head}: no NetworkPolicy selects it for {direction}; Baseline tier, {rule.action} "
            f"({verdict}) by",
            f"{_INDENT}{_tier_rule(rule)}",
            *passes,
            *notes,
        ]
    return [
        f"{head}: not isolated (no policy selects it for {direction}) and no Admin or Baseline "
        "rule decides, allowed",
        *passes,
        *notes,
    ]


def _side(
    side: SideDecision, kind: EndpointKind, *, to_pod: bool, verbose: bool = False
) -> list[str]:
    """One side; ``kind`` is its own endpoint's, ``to_pod`` whether the destination is a pod
    (named ports resolve only there). ``verbose``: every rule of every isolating policy of a
    denial, and the isolating policies that admitted nothing on an allowed side."""
    where = "egress at" if side.direction is Direction.EGRESS else "ingress at"
    head = f"{where} {side.endpoint}"
    if not side.applicable:
        return [f"{head}: {_NOT_APPLICABLE[kind]}"]
    if side.tier is not None:
        return _tiered(side, head, _np_side(side, head, to_pod=to_pod, verbose=verbose))
    return _np_side(side, head, to_pod=to_pod, verbose=verbose)


def _np_side(side: SideDecision, head: str, *, to_pod: bool, verbose: bool) -> list[str]:
    if not side.isolated:
        return [f"{head}: not isolated (no policy selects it for {side.direction.value}), allowed"]
    names = ", ".join(p.key for p in side.isolating)
    if side.allowed:
        lines = [f"{head}: isolated by {names}; allowed by"]
        lines += [f"{_INDENT}{_admission(a)}" for a in side.admitted_by]
        if verbose:
            admitting = {a.policy.key for a in side.admitted_by}
            lines += [
                f"{_INDENT}{_policy(ref)}: isolates it too, but no rule of it admits this "
                "(one admitting rule of any policy is enough, S04)"
                for ref in side.isolating
                if ref.key not in admitting
            ]
        return lines
    lines = [f"{head}: isolated by {names}; no rule allows it, denied"]
    for miss in side.misses:
        block = _policy_miss(miss, side.direction, to_pod=to_pod, verbose=verbose)
        lines += [f"{_INDENT}{line}" for line in block]
    return lines


def _special(decision: Decision) -> str | None:
    reason = decision.reason
    dst = decision.destination.name
    if reason is Reason.SELF:
        return "a pod may always connect to itself (S07, setting self_traffic_allowed)"
    if reason is Reason.FROM_NODE:
        return f"from the pod's own node {decision.source.node} (S24, setting allow_from_node)"
    if reason is Reason.NO_BACKENDS:
        return f"service {dst} selects no pod, so nothing answers"
    if reason is Reason.UNRESOLVED_PORT:
        wanted = decision.port_name if decision.port_name is not None else decision.port
        if decision.destination.kind is EndpointKind.SERVICE:
            return f"service {dst} has no port {wanted}/{decision.protocol.value}"
        if decision.destination.kind in (EndpointKind.POD, EndpointKind.HOST_NETWORK_POD):
            return (
                f"{dst} declares no {decision.protocol.value} port named {wanted!r}, so the "
                "port cannot be resolved (S21)"
            )
        return f"a port name cannot be resolved towards {dst}, which is not a pod (S21)"
    return None


def _name(endpoint: Endpoint) -> str:
    prefix = "svc:" if endpoint.kind is EndpointKind.SERVICE else ""
    return f"{prefix}{endpoint.name}"


def _endpoint_line(role: str, endpoint: Endpoint) -> str:
    """``from: test/busybox (pod on node n1, at 198.18.0.3)``: how an endpoint was understood."""
    facts = [endpoint.kind.value]
    if endpoint.node is not None and endpoint.kind is not EndpointKind.NODE:
        facts[0] += f" on node {endpoint.node}"
    if endpoint.address is not None:
        facts.append(f"at {endpoint.address}")
    return f"{role}: {_name(endpoint)} ({', '.join(facts)})"


def _lines(decision: Decision, *, verbose: bool = False) -> list[str]:
    verdict = "ALLOWED" if decision.allowed else "DENIED"
    lines = [
        f"{verdict}: {_name(decision.source)} -> {_name(decision.destination)} on {_port(decision)}"
    ]
    if verbose:
        lines.append(f"{_INDENT}{_endpoint_line('from', decision.source)}")
        lines.append(f"{_INDENT}{_endpoint_line('to', decision.destination)}")
    special = _special(decision)
    if special is not None:
        lines.append(f"{_INDENT}{special}")
    if decision.reason is Reason.SERVICE:
        lines.append(
            f"{_INDENT}service {decision.destination.name}: decided per backend pod on its "
            "target port (S22); allowed only if every backend allows it"
        )
        for backend in decision.backends:
            lines += [f"{_INDENT}{_INDENT}{line}" for line in _lines(backend, verbose=verbose)]
    if decision.reason is Reason.HOST_NETWORK:
        lines.append(
            f"{_INDENT}note: hostNetwork pods act as their node's address and are not selected "
            "by policies (S23)"
        )
    to_pod = decision.destination.kind is EndpointKind.POD
    if decision.egress is not None:
        egress = _side(decision.egress, decision.source.kind, to_pod=to_pod, verbose=verbose)
        lines += [f"{_INDENT}{line}" for line in egress]
    if decision.ingress is not None:
        ingress = _side(decision.ingress, decision.destination.kind, to_pod=to_pod, verbose=verbose)
        lines += [f"{_INDENT}{line}" for line in ingress]
    return lines


def render_text(decision: Decision, *, verbose: bool = False) -> str:
    """A readable explanation: verdict, each side, and the policy, rule and file:line behind it.

    ``verbose`` (``explain -v``) adds how each endpoint was understood, every rule of every
    isolating policy of a denial (not only the nearest) with each port entry's verdict, and on
    an allowed side the isolating policies that admitted nothing."""
    return "\n".join(_lines(decision, verbose=verbose))
