"""Parsing a ``networking.k8s.io/v1`` NetworkPolicy: rules, peers, ports, policyTypes.

Why this module exists: the NetworkPolicy is the object kubefence answers questions about, so it
is validated completely, as ``pkg/apis/networking/validation`` does (SEMANTICS V01-V07, with the
deliberate differences listed in ``_validate``), with strict fields for every struct (V07). It
also records the line of every rule, peer and port (``NetworkPolicy.lines``) so explanations can
point into the file.

Defaulting applied here (see docs/semantics.md):

- S02: ``policyTypes`` absent or empty -> ``[Ingress]``, plus ``Egress`` when ``spec.egress`` has
  at least one rule (``egress: []`` adds nothing). Explicit values win.
- S18: a missing ``protocol`` is TCP (``ObjectReader.protocol``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from kubefence.api._models import (
    IPBlock,
    IPNetwork,
    LabelSelector,
    NetworkPolicy,
    Origin,
    Peer,
    PolicyPort,
    PolicyType,
    Protocol,
    Rule,
    rule_path,
)
from kubefence.api._parse_fields import ObjectReader, show
from kubefence.api._parse_selector import label_selector
from kubefence.api._tree import member_line
from kubefence.api._validate import cidr_problems, parse_cidr, port_number_problems, port_problems

__all__ = ["network_policy"]

_POLICY_TYPES = ("Egress", "Ingress")

# Strict field validation (V07): the fields of networking.k8s.io/v1 NetworkPolicy, per struct.
_POLICY_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_SPEC_FIELDS = frozenset({"podSelector", "ingress", "egress", "policyTypes"})
_INGRESS_RULE_FIELDS = frozenset({"from", "ports"})
_EGRESS_RULE_FIELDS = frozenset({"to", "ports"})
_PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
_IPBLOCK_FIELDS = frozenset({"cidr", "except"})
_PORT_FIELDS = frozenset({"protocol", "port", "endPort"})


def _policy_port(obj: ObjectReader, raw: Mapping[Any, Any], path: str) -> PolicyPort:
    """``NetworkPolicyPort``: protocol (default TCP, S18), port number or name, endPort (V03)."""
    obj.unknown_fields(raw, _PORT_FIELDS, path)
    protocol = obj.protocol(raw, path) or Protocol.TCP
    port: int | str | None = obj.get(
        raw, "port", f"{path}.port", (int, str), "a port number or an IANA service name"
    )
    end_port = obj.integer(raw, "endPort", f"{path}.endPort")
    port_line = member_line(raw, "port")
    end_line = member_line(raw, "endPort")
    if port is not None:
        obj.invalid(f"{path}.port", port, port_problems(port), port_line)
    if end_port is None:
        pass
    elif port is None:
        obj.fail(f"{path}.endPort", "may not be specified when `port` is not specified", end_line)
    elif isinstance(port, str):
        obj.fail(f"{path}.endPort", "may not be specified when `port` is non-numeric", end_line)
    else:
        if end_port < port:
            obj.fail(
                f"{path}.endPort",
                f"invalid value {end_port}: must be greater than or equal to `port` ({port})",
                end_line,
            )
        obj.invalid(f"{path}.endPort", end_port, port_number_problems(end_port), end_line)
    return PolicyPort(protocol=protocol, port=port, end_port=end_port)


def _ip_block(
    obj: ObjectReader, raw: Mapping[Any, Any], path: str, notes: list[str]
) -> IPBlock | None:
    """``IPBlock`` (V05): a CIDR and excepts strictly inside it, of the same family."""
    obj.unknown_fields(raw, _IPBLOCK_FIELDS, path)
    cidr_text = obj.string(raw, "cidr", f"{path}.cidr")
    excepts_raw = obj.sequence(raw, "except", f"{path}.except") or []
    if not cidr_text:
        if cidr_text is not None or raw.get("cidr") is None:
            obj.fail(f"{path}.cidr", "is required (e.g. 10.0.0.0/16)", member_line(raw, "cidr"))
        return None
    obj.invalid(f"{path}.cidr", cidr_text, cidr_problems(cidr_text), member_line(raw, "cidr"))
    cidr = parse_cidr(cidr_text)
    if cidr is None:
        return None
    if cidr.network_address != ipaddress.ip_address(cidr_text.partition("/")[0]):
        notes.append(f"{obj.label}: {path}.cidr {cidr_text} has host bits set; read as {cidr}")
    excepts: list[IPNetwork] = []
    for ex_path, text, line in obj.entries(excepts_raw, f"{path}.except", str, "a string"):
        obj.invalid(ex_path, text, cidr_problems(text), line)
        ex = parse_cidr(text)
        if ex is None:
            continue
        if (
            ex.version != cidr.version
            or ex.prefixlen <= cidr.prefixlen
            or not ex.subnet_of(
                cidr  # type: ignore[arg-type]  # same version checked just before
            )
        ):
            obj.fail(
                ex_path,
                f"invalid value {show(text)}: must be a strict subset of `cidr` ({cidr_text})",
                line,
            )
            continue
        excepts.append(ex)
    return IPBlock(cidr=cidr, except_=tuple(excepts))


def _peer(
    obj: ObjectReader, raw: Mapping[Any, Any], path: str, notes: list[str], line: int | None
) -> Peer:
    """``NetworkPolicyPeer`` (V04): ipBlock, or pod/namespace selectors, never both or none."""
    obj.unknown_fields(raw, _PEER_FIELDS, path)
    pod_selector = label_selector(obj, raw, "podSelector", f"{path}.podSelector")
    ns_selector = label_selector(obj, raw, "namespaceSelector", f"{path}.namespaceSelector")
    has_block = raw.get("ipBlock") is not None
    ip_raw = obj.mapping(raw, "ipBlock", f"{path}.ipBlock")
    ip_block = _ip_block(obj, ip_raw, f"{path}.ipBlock", notes) if ip_raw is not None else None
    count = sum(raw.get(k) is not None for k in ("podSelector", "namespaceSelector", "ipBlock"))
    if count == 0:
        obj.fail(
            path, "must specify a peer: podSelector, namespaceSelector (or both), or ipBlock", line
        )
    elif count > 1 and has_block:
        obj.fail(
            path,
            "may not specify both ipBlock and another peer (podSelector or namespaceSelector)",
            line,
        )
    return Peer(pod_selector=pod_selector, namespace_selector=ns_selector, ip_block=ip_block)


def _rules(
    obj: ObjectReader,
    spec: Mapping[Any, Any],
    direction: str,
    *,
    lines: dict[str, int],
    notes: list[str],
) -> tuple[Rule, ...]:
    """Ingress or egress rules; a rule that is not an object is a problem and is left out."""
    peer_key = "from" if direction == "ingress" else "to"
    allowed = _INGRESS_RULE_FIELDS if direction == "ingress" else _EGRESS_RULE_FIELDS
    raw_rules = obj.sequence(spec, direction, f"spec.{direction}")
    if raw_rules is None:
        return ()
    rules: list[Rule] = []
    for i in range(len(raw_rules)):
        at = rule_path(direction, i)
        raw = obj.item(raw_rules, i, at, Mapping, "an object (a rule)")
        _record(lines, at, member_line(raw_rules, i))
        if raw is None:
            continue
        obj.unknown_fields(raw, allowed, at)
        peers: list[Peer] = []
        raw_peers = obj.sequence(raw, peer_key, f"{at}.{peer_key}") or []
        for j in range(len(raw_peers)):
            peer_path = f"{at}.{peer_key}[{j}]"
            peer_raw = obj.item(raw_peers, j, peer_path, Mapping, "an object (a peer)")
            _record(lines, peer_path, member_line(raw_peers, j))
            if peer_raw is not None:
                peers.append(_peer(obj, peer_raw, peer_path, notes, member_line(raw_peers, j)))
        ports: list[PolicyPort] = []
        raw_ports = obj.sequence(raw, "ports", f"{at}.ports") or []
        for k in range(len(raw_ports)):
            port_path = f"{at}.ports[{k}]"
            port_raw = obj.item(raw_ports, k, port_path, Mapping, "an object (a port)")
            _record(lines, port_path, member_line(raw_ports, k))
            if port_raw is not None:
                ports.append(_policy_port(obj, port_raw, port_path))
        rules.append(Rule(peers=tuple(peers), ports=tuple(ports)))
    return tuple(rules)


def _record(lines: dict[str, int], path: str, line: int | None) -> None:
    if line is not None:
        lines[path] = line


def _policy_types(
    obj: ObjectReader, spec: Mapping[Any, Any], egress: tuple[Rule, ...]
) -> tuple[PolicyType, ...]:
    """``policyTypes`` (V06), defaulted per S02 when absent or empty."""
    raw = obj.sequence(spec, "policyTypes", "spec.policyTypes")
    if not raw:
        # S02: [Ingress], plus Egress iff spec.egress has at least one rule.
        if egress:
            return (PolicyType.INGRESS, PolicyType.EGRESS)
        return (PolicyType.INGRESS,)
    if len(raw) > 2:
        obj.fail(
            "spec.policyTypes",
            "may not specify more than two policyTypes",
            member_line(spec, "policyTypes"),
        )
        return (PolicyType.INGRESS,)
    result: list[PolicyType] = []
    for path, value, line in obj.entries(raw, "spec.policyTypes", str, "a string"):
        if value not in _POLICY_TYPES:
            obj.fail(
                path,
                f'unsupported value {show(value)}: supported values: "Egress", "Ingress"',
                line,
            )
            continue
        policy_type = PolicyType(value)
        if policy_type in result:
            obj.fail(
                path,
                f"duplicate value {value!r}: each policy type may appear once",
                line,
            )
            continue
        result.append(policy_type)
    return tuple(result) or (PolicyType.INGRESS,)


def network_policy(
    obj: ObjectReader,
    raw: Mapping[Any, Any],
    *,
    namespace: str,
    name: str,
    origin: Origin,
    notes: list[str],
) -> NetworkPolicy:
    """The policy, defaulted (S02); every problem recorded on ``obj``, notes (host bits set in an
    ipBlock) appended to ``notes``."""
    obj.unknown_fields(raw, _POLICY_FIELDS, "")
    spec = obj.mapping(raw, "spec", "spec") or {}
    obj.unknown_fields(spec, _SPEC_FIELDS, "spec")
    lines: dict[str, int] = {}
    _record(lines, "spec.podSelector", member_line(spec, "podSelector"))
    pod_selector = label_selector(obj, spec, "podSelector", "spec.podSelector")
    ingress = _rules(obj, spec, "ingress", lines=lines, notes=notes)
    egress = _rules(obj, spec, "egress", lines=lines, notes=notes)
    # A written rule missing from ``egress`` is a problem: the policy is never used then.
    policy_types = _policy_types(obj, spec, egress)
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector or LabelSelector(),
        policy_types=policy_types,
        ingress=ingress,
        egress=egress,
        origin=origin,
        lines=lines,
    )
