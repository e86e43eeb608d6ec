"""Parsing ClusterNetworkPolicy (v1alpha2) and AdminNetworkPolicy / BaselineAdminNetworkPolicy
(v1alpha1), validated as their CRD schemas and CEL rules do.

Why this module exists: the tiered policies decide before and after NetworkPolicy, so a typo in
one silently changes many answers; they are held to the same strictness as NetworkPolicy (every
problem, with field path and line; unknown fields rejected, as ``kubectl apply`` with strict
field validation does). The three kinds share one walk, parametrised by a ``_Dialect``: v1alpha2
spells actions ``Accept``/``Deny``/``Pass``, has ``spec.tier`` and ``protocols``; v1alpha1 spells
``Allow``, has no tier (the kind is the tier) and ``ports``. Rules checked (upstream CRDs):

- required: ``spec.tier`` (v1alpha2), ``spec.priority`` (not BANP), ``spec.subject``, each rule's
  ``action`` and ``from``/``to``, ``pods.podSelector``, ``range.start``/``range.end``;
- enums: tier ``Admin``/``Baseline``; action per kind; port protocol TCP/UDP/SCTP (v1alpha1);
- limits: priority 0-1000; rules per direction 25 (v1alpha1: 100); peers and port entries per
  rule 1-25 (v1alpha1: 1-100); ``networks``/``domainNames`` 1-25 items without repeats;
  rule ``name`` at most 100 characters; CIDR at most 43 characters; ports 1-65535;
- exactly one field set in: subject, each peer, each protocol entry, ``destinationPort``;
  ``tcp``/``udp``/``sctp`` must set ``destinationPort``;
- CEL: ``isCIDR`` on every network ("Invalid CIDR format provided"), ``start < end`` (v1alpha2),
  no named port in a rule with a networks/nodes/domainNames peer, BANP named ``default``;
- ``domainNames`` match the CRD's pattern (a ``*.`` prefix at most).

Longer than most modules (about 480 lines) because it is one walk over three kinds' schemas:
the dialect table and the reader that consults it are read together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubefence.api._cnp_models import (
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    Tier,
)
from kubefence.api._models import IPNetwork, LabelSelector, Origin, Protocol
from kubefence.api._parse_fields import ObjectReader, show
from kubefence.api._parse_selector import label_selector
from kubefence.api._tree import member_line
from kubefence.api._validate import parse_cidr

__all__ = ["TIER_API_VERSIONS", "tiered_policy"]

TIER_API_VERSIONS: Mapping[str, str] = {
    "ClusterNetworkPolicy": "policy.networking.k8s.io/v1alpha2",
    "AdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
    "BaselineAdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
}

_TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_SUBJECT_FIELDS = ("namespaces", "pods")
_NAMESPACED_POD_FIELDS = frozenset({"namespaceSelector", "podSelector"})
_INGRESS_PEER_FIELDS = ("namespaces", "pods")
_DOMAIN_NAME = re.compile(
    r"(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?\Z"
)  # the CRD's pattern, character for character (``A-z`` included)
_BANP_NAME_MESSAGE = (
    'Only one baseline admin network policy with metadata.name="default" can be created in the '
    "cluster"
)


@dataclass(frozen=True, slots=True)
class _Dialect:
    kind: str
    tier: Tier | None  # None: read from spec.tier
    has_priority: bool
    max_items: int  # rules per direction, peers and port entries per rule
    actions: Mapping[str, AdminAction]
    ports_key: str  # "protocols" (v1alpha2) or "ports" (v1alpha1)
    egress_peer_fields: tuple[str, ...]

    @property
    def spec_fields(self) -> frozenset[str]:
        extra = ({"tier"} if self.tier is None else set()) | (
            {"priority"} if self.has_priority else set()
        )
        return frozenset({"subject", "ingress", "egress", *extra})

    def rule_fields(self, direction: str) -> frozenset[str]:
        peers = "from" if direction == "ingress" else "to"
        return frozenset({"name", "action", peers, self.ports_key})


_ACCEPT_DENY_PASS = {a.value: a for a in AdminAction}
_DIALECTS: Mapping[str, _Dialect] = {
    "ClusterNetworkPolicy": _Dialect(
        kind="ClusterNetworkPolicy",
        tier=None,
        has_priority=True,
        max_items=25,
        actions=_ACCEPT_DENY_PASS,
        ports_key="protocols",
        egress_peer_fields=("namespaces", "pods", "nodes", "networks", "domainNames"),
    ),
    "AdminNetworkPolicy": _Dialect(
        kind="AdminNetworkPolicy",
        tier=Tier.ADMIN,
        has_priority=True,
        max_items=100,
        actions={"Allow": AdminAction.ACCEPT, "Deny": AdminAction.DENY, "Pass": AdminAction.PASS},
        ports_key="ports",
        egress_peer_fields=("namespaces", "pods", "nodes", "networks", "domainNames"),
    ),
    "BaselineAdminNetworkPolicy": _Dialect(
        kind="BaselineAdminNetworkPolicy",
        tier=Tier.BASELINE,
        has_priority=False,
        max_items=100,
        actions={"Allow": AdminAction.ACCEPT, "Deny": AdminAction.DENY},
        ports_key="ports",
        egress_peer_fields=("namespaces", "pods", "nodes", "networks"),
    ),
}


def _supported(values: Sequence[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


class _Reader:
    """One tiered policy being read: the dialect, the problems and the lines of its paths."""

    def __init__(self, obj: ObjectReader, dialect: _Dialect) -> None:
        self.obj = obj
        self.d = dialect
        self.lines: dict[str, int] = {}

    def record(self, path: str, line: int | None) -> None:
        if line is not None:
            self.lines[path] = line

    def required(self, parent: Mapping[Any, Any], key: str, path: str, line: int | None) -> bool:
        if parent.get(key) is None:
            self.obj.fail(f"{path}.{key}", "is required", line)
            return False
        return True

    def one_of(
        self, raw: Mapping[Any, Any], fields: Sequence[str], path: str, line: int | None
    ) -> str | None:
        """The one field of ``fields`` set in ``raw`` (min/maxProperties 1); a problem if none
        or several are."""
        before = len(self.obj.problems)
        self.obj.unknown_fields(raw, frozenset(fields), path)
        present = [f for f in fields if raw.get(f) is not None]
        if len(present) == 1:
            return present[0]
        if not present and len(self.obj.problems) > before:
            pass  # an unknown field (a peer kind of another version?) is the one problem
        elif not present:
            self.obj.fail(path, f"must set exactly one of: {', '.join(fields)}; none is set", line)
        else:
            self.obj.fail(
                path,
                f"must set exactly one of: {', '.join(fields)}; {', '.join(present)} are set",
                line,
            )
        return None

    def items(
        self,
        parent: Mapping[Any, Any],
        key: str,
        path: str,
        *,
        minimum: int,
        maximum: int,
    ) -> Sequence[Any]:
        raw = self.obj.sequence(parent, key, path)
        if raw is None:
            return ()
        line = member_line(parent, key)
        if len(raw) < minimum:
            self.obj.fail(path, f"must have at least {minimum} item", line)
        if len(raw) > maximum:
            self.obj.fail(path, f"must have at most {maximum} items, not {len(raw)}", line)
        return raw

    def selector(self, parent: Mapping[Any, Any], key: str, path: str) -> LabelSelector:
        self.record(path, member_line(parent, key))
        return label_selector(self.obj, parent, key, path) or LabelSelector()

    def namespaced_pod(
        self, parent: Mapping[Any, Any], path: str
    ) -> tuple[LabelSelector, LabelSelector]:
        raw = self.obj.mapping(parent, "pods", path) or {}
        self.obj.unknown_fields(raw, _NAMESPACED_POD_FIELDS, path)
        self.required(raw, "podSelector", path, member_line(parent, "pods"))
        namespaces = self.selector(raw, "namespaceSelector", f"{path}.namespaceSelector")
        return namespaces, self.selector(raw, "podSelector", f"{path}.podSelector")

    # --- peers -----------------------------------------------------------------------------

    def peer(self, raw: Mapping[Any, Any], path: str, index: int, *, egress: bool) -> AdminPeer:
        fields = self.d.egress_peer_fields if egress else _INGRESS_PEER_FIELDS
        chosen = self.one_of(raw, fields, path, self.lines.get(path))
        if chosen == "namespaces":
            selector = self.selector(raw, "namespaces", f"{path}.namespaces")
            return AdminPeer(index, AdminPeerKind.NAMESPACES, namespace_selector=selector)
        if chosen == "pods":
            namespaces, pods = self.namespaced_pod(raw, f"{path}.pods")
            return AdminPeer(
                index, AdminPeerKind.PODS, namespace_selector=namespaces, pod_selector=pods
            )
        if chosen == "nodes":
            selector = self.selector(raw, "nodes", f"{path}.nodes")
            return AdminPeer(index, AdminPeerKind.NODES, node_selector=selector)
        if chosen == "networks":
            return AdminPeer(index, AdminPeerKind.NETWORKS, networks=self.networks(raw, path))
        if chosen == "domainNames":
            names = self.strings(raw, "domainNames", f"{path}.domainNames", self.domain_problem)
            return AdminPeer(index, AdminPeerKind.DOMAIN_NAMES, domain_names=names)
        return AdminPeer(index, AdminPeerKind.NAMESPACES, namespace_selector=LabelSelector())

    def strings(self, raw: Mapping[Any, Any], key: str, path: str, problem: Any) -> tuple[str, ...]:
        """A ``listType=set`` of 1-25 strings, each checked by ``problem`` (None when fine)."""
        values = self.items(raw, key, path, minimum=1, maximum=25)
        result: list[str] = []
        for at, text, line in self.obj.entries(values, path, str, "a string"):
            message = problem(text)
            if message is not None:
                self.obj.fail(at, f"invalid value {show(text)}: {message}", line)
            if text in result:
                self.obj.fail(at, f"duplicate value {text!r}", line)
            result.append(text)
        return tuple(result)

    @staticmethod
    def domain_problem(text: str) -> str | None:
        if _DOMAIN_NAME.match(text):
            return None
        return "must be a domain name such as example.com or *.example.com ('*.' only as prefix)"

    @staticmethod
    def cidr_problem(text: str) -> str | None:
        if len(text) > 43:
            return "may not be longer than 43 characters"
        return None if parse_cidr(text) is not None else "Invalid CIDR format provided"

    def networks(self, raw: Mapping[Any, Any], path: str) -> tuple[IPNetwork, ...]:
        texts = self.strings(raw, "networks", f"{path}.networks", self.cidr_problem)
        found = (parse_cidr(t) for t in texts if self.cidr_problem(t) is None)
        return tuple(n for n in found if n is not None)

    # --- ports -----------------------------------------------------------------------------

    def number(self, raw: Mapping[Any, Any], key: str, path: str) -> int | None:
        value = self.obj.integer(raw, key, path)
        if value is not None and not 1 <= value <= 65535:
            self.obj.fail(
                path, f"invalid value {value}: must be between 1 and 65535, inclusive",
                member_line(raw, key),
            )  # fmt: skip
            return None
        return value

    def protocol_entry(self, raw: Mapping[Any, Any], path: str, index: int) -> AdminPort | None:
        """v1alpha2 ``ClusterNetworkPolicyProtocol``."""
        line = self.lines.get(path)
        chosen = self.one_of(raw, ("tcp", "udp", "sctp", "destinationNamedPort"), path, line)
        if chosen is None:
            return None
        if chosen == "destinationNamedPort":
            name = self.obj.string(raw, chosen, f"{path}.{chosen}")
            return None if name is None else AdminPort(index, name=name)
        at = f"{path}.{chosen}"
        proto = self.obj.mapping(raw, chosen, at) or {}
        self.obj.unknown_fields(proto, frozenset({"destinationPort"}), at)
        if not self.required(proto, "destinationPort", at, member_line(raw, chosen)):
            return None
        at = f"{at}.destinationPort"
        port = self.obj.mapping(proto, "destinationPort", at) or {}
        which = self.one_of(port, ("number", "range"), at, member_line(proto, "destinationPort"))
        protocol = Protocol(chosen.upper())
        if which == "number":
            number = self.number(port, "number", f"{at}.number")
            return None if number is None else AdminPort(index, protocol, number, number)
        if which == "range":
            low, high = self.port_range(port, f"{at}.range", strict_order=True)
            if low is not None and high is not None:
                return AdminPort(index, protocol, low, high)
        return None

    def port_range(
        self, parent: Mapping[Any, Any], path: str, *, strict_order: bool
    ) -> tuple[int | None, int | None]:
        key = path.rpartition(".")[2]
        raw = self.obj.mapping(parent, key, path) or {}
        allowed = {"start", "end"} | (set() if strict_order else {"protocol"})
        self.obj.unknown_fields(raw, frozenset(allowed), path)
        line = member_line(parent, key)
        start = self.number(raw, "start", f"{path}.start")
        end = self.number(raw, "end", f"{path}.end")
        self.required(raw, "start", path, line)
        self.required(raw, "end", path, line)
        if strict_order and start is not None and end is not None and not start < end:
            self.obj.fail(path, "Start port must be less than End port", line)
            return None, None
        return start, end

    def v1alpha1_port(self, raw: Mapping[Any, Any], path: str, index: int) -> AdminPort | None:
        """v1alpha1 ``AdminNetworkPolicyPort``: portNumber, namedPort or portRange."""
        chosen = self.one_of(raw, ("portNumber", "namedPort", "portRange"), path, None)
        at = f"{path}.{chosen}"
        if chosen == "namedPort":
            name = self.obj.string(raw, chosen, at)
            return None if name is None else AdminPort(index, name=name)
        if chosen is None:
            return None
        entry = self.obj.mapping(raw, chosen, at) or {}
        protocol = self.obj.protocol(entry, at)
        if chosen == "portNumber":
            self.obj.unknown_fields(entry, frozenset({"protocol", "port"}), at)
            self.required(entry, "port", at, member_line(raw, chosen))
            number = self.number(entry, "port", f"{at}.port")
            if number is None or protocol is None:
                return None
            return AdminPort(index, protocol, number, number)
        low, high = self.port_range(raw, at, strict_order=False)
        if low is None or high is None or protocol is None:
            return None
        return AdminPort(index, protocol, low, high)

    # --- rules -----------------------------------------------------------------------------

    def rules(self, spec: Mapping[Any, Any], direction: str) -> tuple[AdminRule, ...]:
        path = f"spec.{direction}"
        peers_key = "from" if direction == "ingress" else "to"
        maximum = self.d.max_items
        result: list[AdminRule] = []
        raw_rules = self.items(spec, direction, path, minimum=0, maximum=maximum)
        for at, raw, line in self.obj.entries(raw_rules, path, Mapping, "an object (a rule)"):
            self.record(at, line)
            index = len(result)
            self.obj.unknown_fields(raw, self.d.rule_fields(direction), at)
            name = self.obj.string(raw, "name", f"{at}.name")
            if name is not None and len(name) > 100:
                self.obj.fail(
                    f"{at}.name", f"may not be longer than 100 characters ({len(name)})",
                    member_line(raw, "name"),
                )  # fmt: skip
            action = self.action(raw, at, line)
            self.required(raw, peers_key, at, line)
            peers: list[AdminPeer] = []
            raw_peers = self.items(raw, peers_key, f"{at}.{peers_key}", minimum=1, maximum=maximum)
            for p_at, p_raw, p_line in self.obj.entries(
                raw_peers, f"{at}.{peers_key}", Mapping, "an object (a peer)"
            ):
                self.record(p_at, p_line)
                peers.append(self.peer(p_raw, p_at, len(peers), egress=direction == "egress"))
            ports: list[AdminPort] = []
            key = self.d.ports_key
            raw_ports = self.items(raw, key, f"{at}.{key}", minimum=1, maximum=maximum)
            for k_at, k_raw, k_line in self.obj.entries(
                raw_ports, f"{at}.{key}", Mapping, "an object"
            ):
                self.record(k_at, k_line)
                reader = self.protocol_entry if key == "protocols" else self.v1alpha1_port
                port = reader(k_raw, k_at, len(ports))
                if port is not None:
                    ports.append(port)
            self.named_port_rule(peers, ports, at, line)
            if action is not None:
                result.append(AdminRule(index, action, tuple(peers), tuple(ports), name or None))
        return tuple(result)

    def action(self, raw: Mapping[Any, Any], at: str, line: int | None) -> AdminAction | None:
        value = self.obj.string(raw, "action", f"{at}.action")
        if value is None:
            self.required(raw, "action", at, line)
            return None
        if value not in self.d.actions:
            self.obj.fail(
                f"{at}.action",
                f"unsupported value {show(value)}: supported values: "
                f"{_supported(list(self.d.actions))}",
                member_line(raw, "action"),
            )
            return None
        return self.d.actions[value]

    def named_port_rule(
        self, peers: Sequence[AdminPeer], ports: Sequence[AdminPort], at: str, line: int | None
    ) -> None:
        """The egress rule's CEL rule: no named port next to a networks/nodes/domainNames peer."""
        kinds = {AdminPeerKind.NETWORKS, AdminPeerKind.NODES, AdminPeerKind.DOMAIN_NAMES}
        if any(p.kind in kinds for p in peers) and any(p.name is not None for p in ports):
            present = [k.value for k in kinds if k.value in self.d.egress_peer_fields]
            names = "/".join(sorted(present, key=["networks", "nodes", "domainNames"].index))
            self.obj.fail(
                at,
                f"{names} peer cannot be set with namedPorts since there are no namedPorts "
                f"for {names}",
                line,
            )

    # --- the object ------------------------------------------------------------------------

    def tier(self, spec: Mapping[Any, Any]) -> Tier | None:
        if self.d.tier is not None:
            return self.d.tier
        value = self.obj.string(spec, "tier", "spec.tier")
        if value is None:
            return None
        if value not in (t.value for t in Tier):
            self.obj.fail(
                "spec.tier",
                f'unsupported value {show(value)}: supported values: "Admin", "Baseline"',
                member_line(spec, "tier"),
            )
            return None
        return Tier(value)

    def priority(self, spec: Mapping[Any, Any]) -> int | None:
        if not self.d.has_priority:
            return None
        value = self.obj.integer(spec, "priority", "spec.priority")
        if value is not None and not 0 <= value <= 1000:
            self.obj.fail(
                "spec.priority", f"invalid value {value}: must be between 0 and 1000, inclusive",
                member_line(spec, "priority"),
            )  # fmt: skip
        return value

    def subject(self, spec: Mapping[Any, Any]) -> tuple[LabelSelector, LabelSelector | None]:
        raw = self.obj.mapping(spec, "subject", "spec.subject")
        if raw is None:
            return LabelSelector(), None
        line = member_line(spec, "subject")
        self.record("spec.subject", line)
        chosen = self.one_of(raw, _SUBJECT_FIELDS, "spec.subject", line)
        if chosen == "namespaces":
            return self.selector(raw, "namespaces", "spec.subject.namespaces"), None
        if chosen == "pods":
            return self.namespaced_pod(raw, "spec.subject.pods")
        return LabelSelector(), None


def tiered_policy(
    obj: ObjectReader, raw: Mapping[Any, Any], *, kind: str, name: str, origin: Origin
) -> ClusterNetworkPolicy:
    """The policy of ``kind`` (a key of ``TIER_API_VERSIONS``); every problem on ``obj``."""
    reader = _Reader(obj, _DIALECTS[kind])
    dialect = reader.d
    obj.unknown_fields(raw, _TOP_FIELDS, "")
    if kind == "BaselineAdminNetworkPolicy" and name != "default":
        obj.fail("metadata.name", _BANP_NAME_MESSAGE, member_line(raw.get("metadata"), "name"))
    spec = obj.mapping(raw, "spec", "spec")
    if spec is None:
        obj.fail("spec", "is required", None)
        spec = {}
    spec_line = member_line(raw, "spec")
    obj.unknown_fields(spec, dialect.spec_fields, "spec")
    for key in ("tier", "priority", "subject"):
        if key in dialect.spec_fields:
            reader.required(spec, key, "spec", spec_line)
    tier = reader.tier(spec)
    priority = reader.priority(spec)
    namespaces, pods = reader.subject(spec)
    ingress = reader.rules(spec, "ingress")
    egress = reader.rules(spec, "egress")
    return ClusterNetworkPolicy(
        name=name,
        kind=kind,
        tier=tier or Tier.ADMIN,
        priority=priority,
        namespace_selector=namespaces,
        pod_selector=pods,
        ingress=ingress,
        egress=egress,
        origin=origin,
        lines=reader.lines,
    )
