"""Planning the admin tiers: tier classes of pods, their ordered steps over peer address sets.

Why this module exists: ClusterNetworkPolicy (and the v1alpha1 AdminNetworkPolicy and
BaselineAdminNetworkPolicy) are ordered rule lists with actions, unlike NetworkPolicy's union of
allows, so they get their own chains (see ``_plan``'s module docstring, "Admin tiers"). This
module mirrors ``kubefence.semantics._tiers`` exactly: subjects by ``admin_selects``, peers as
``admin_peer_matches`` would answer for every address of the sandbox, ports as
``admin_port_matches``. ``draft_tiers`` runs before the atom cut (the tier peers' address sets
take part in it, so one atom map serves NetworkPolicy and the tiers); ``finish_tiers`` writes the
steps over atom numbers once the atoms are cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from kubefence.api import (
    AdminPeer,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    Inventory,
    Pod,
    Protocol,
    Tier,
)
from kubefence.dataplane.nft._entries import (  # the one hash-once set key
    AddressSets,
    Entry,
    SymbolicBox,
    _SetKey,
    boxes_of,
)
from kubefence.dataplane.nft._intervals import (
    FULL_PORTS,
    FULL_PROTOCOLS,
    Interval,
)
from kubefence.dataplane.nft._model import PROTOCOL_NUMBERS, NamedPort
from kubefence.dataplane.nft._peers import Context
from kubefence.dataplane.nft._tier_memo import TierMemo
from kubefence.dataplane.nft._tier_model import (
    ADMIN,
    BASELINE,
)
from kubefence.dataplane.nft._tier_peers import NodeFacts, TierPeers
from kubefence.dataplane.nft._tiers_finish import (
    TierDrafts,
    _ClassDraft,
    _GroupDraft,
    _StepDraft,
    finish_tiers,
)
from kubefence.semantics import (
    Direction,
    admin_selects,
    resolve_named_port,
    selector_matches,
)

__all__ = ["TierDrafts", "TierMemo", "draft_tiers", "finish_tiers"]

_PROTOCOLS = tuple(PROTOCOL_NUMBERS)  # TCP, UDP, SCTP


def _returns(tier: str, action: str) -> str:
    """What a matching rule does to the packet in the table: Baseline Pass leaves the last
    tier, i.e. allows like Accept; Admin Pass goes on to NetworkPolicy."""
    if tier == BASELINE and action == "Pass":
        return "Accept"
    return action


def _rules(policy: ClusterNetworkPolicy, direction: Direction) -> tuple[AdminRule, ...]:
    return policy.ingress if direction is Direction.INGRESS else policy.egress


def _policy_text(policy: ClusterNetworkPolicy) -> str:
    priority = "last" if policy.priority is None else f"priority {policy.priority}"
    return f"{policy.kind}/{policy.name} ({priority})"


def _rule_text(policy: ClusterNetworkPolicy, direction: Direction, rule: AdminRule) -> str:
    name = f" ({rule.name})" if rule.name else ""
    return f"{policy.name} {direction.value}[{rule.index}]{name} {rule.action.value}"


def _port_boxes(
    port: AdminPort, resolution: Mapping[tuple[str, Protocol], int | None]
) -> list[tuple[Interval, Interval]]:
    """(protocol, port) ranges of a numeric entry, or of an ingress named port resolved
    against the subject's own ports (``resolution``)."""
    if port.name is not None:
        found = []
        for protocol in _PROTOCOLS:
            value = resolution.get((port.name, protocol))
            if value is not None:
                number = PROTOCOL_NUMBERS[protocol]
                found.append(((number, number), (value, value)))
        return found
    assert port.protocol is not None
    assert port.low is not None
    assert port.high is not None
    number = PROTOCOL_NUMBERS[port.protocol]
    return [((number, number), (port.low, port.high))]


class _Drafter:
    """Turns one class's ordered rules into symbolic steps (address set ids, not atoms)."""

    def __init__(self, memo: TierMemo, peers: TierPeers, sets: AddressSets) -> None:
        self.memo = memo
        self.peers = peers
        self.sets = sets
        self._runs: dict[tuple[object, ...], tuple[_StepDraft, ...]] = {}
        self._plain: dict[AdminPeer, AdminPeer] = {}
        self._keys: dict[AdminPeer, _SetKey] = {}

    def rule_boxes(
        self,
        policy: ClusterNetworkPolicy,
        direction: Direction,
        rule: AdminRule,
        resolution: Mapping[tuple[str, Protocol], int | None],
    ) -> list[SymbolicBox]:
        """What one rule matches (``rule_entries``), over this call's set ids."""
        key = (policy.kind, policy.name, direction, rule.index, _relevant((rule,), resolution))
        entries = self.memo.entries(key, rule)
        if entries is None:
            entries = self.rule_entries(policy, direction, rule, resolution)
            self.memo.keep(key, rule, entries)
        return boxes_of(self.sets, entries)

    def rule_entries(
        self,
        policy: ClusterNetworkPolicy,
        direction: Direction,
        rule: AdminRule,
        resolution: Mapping[tuple[str, Protocol], int | None],
    ) -> tuple[Entry, ...]:
        """What one rule matches: any peer AND any port entry (T05, T06)."""
        field_name = "from" if direction is Direction.INGRESS else "to"
        found: list[Entry] = []
        for peer in rule.peers:
            origin = f"{policy.name} {direction.value}[{rule.index}].{field_name}[{peer.index}]"
            plain = self._plain.get(peer)
            if plain is None:  # equal peers of different rules share one set
                plain = self._plain.setdefault(peer, replace(peer, index=0))
            ports = rule.ports or ()
            specs: list[tuple[Interval, Interval]] = []
            if not ports:
                specs.append((FULL_PROTOCOLS, FULL_PORTS))  # no protocols: everything
            for port in ports:
                if port.name is not None and direction is Direction.EGRESS:
                    for protocol in _PROTOCOLS:
                        number = PROTOCOL_NUMBERS[protocol]
                        resolved = self.peers.named(plain, port.name, protocol)
                        for value, ranges in resolved.items():
                            key = _SetKey(("tier", "named", plain, port.name, protocol, value))
                            where = f"{origin} where {port.name} is {value}"
                            found.append((key, ranges, where, (number, number), (value, value)))
                    continue
                specs.extend(_port_boxes(port, resolution))
            if specs:
                ranges = self.peers.ranges(plain)
                peer_key = self._keys.get(plain)
                if peer_key is None:
                    peer_key = self._keys[plain] = _SetKey(("tier", plain))
                found.extend((peer_key, ranges, origin, proto, ps) for proto, ps in specs)
        return tuple(found)

    def runs(
        self,
        tier: str,
        policy: ClusterNetworkPolicy,
        direction: Direction,
        resolution: Mapping[tuple[str, Protocol], int | None],
    ) -> tuple[_StepDraft, ...]:
        """One policy's rules in order, consecutive rules that do the same to a packet merged
        into one step (first match among them gives the same verdict). Computed once per
        policy and the named-port resolution it reads, so every class the policy selects
        shares the steps, and the table their sets."""
        relevant = _relevant(_rules(policy, direction), resolution)
        key = (policy.kind, policy.name, direction, relevant)
        found = self._runs.get(key)
        if found is not None:
            return found
        steps: list[_StepDraft] = []
        for rule in _rules(policy, direction):
            boxes = self.rule_boxes(policy, direction, rule, resolution)
            if not boxes:
                continue  # matches nothing here: cannot be anyone's first match
            action = rule.action.value
            text = _rule_text(policy, direction, rule)
            last = steps[-1] if steps else None
            if last is not None and _returns(tier, last.action) == _returns(tier, action):
                merged = (*last.boxes, *boxes)
                steps[-1] = _StepDraft(last.action, (*last.rules, text), merged, last.key)
            else:
                steps.append(_StepDraft(action, (text,), tuple(boxes), (*key, len(steps))))
        found = tuple(steps)
        self._runs[key] = found
        return found


def _relevant(
    rules: Sequence[AdminRule], resolution: Mapping[tuple[str, Protocol], int | None]
) -> tuple[tuple[str, Protocol, int | None], ...]:
    """The part of an ingress class's named-port resolution that ``rules`` read."""
    if not resolution:
        return ()  # egress, or an ingress class whose policies use no named port
    names = {port.name for rule in rules for port in rule.ports if port.name}
    if not names:
        return ()
    return tuple(sorted((n, p, v) for (n, p), v in resolution.items() if n in names))


def _short(direction: Direction) -> str:
    return "in" if direction is Direction.INGRESS else "eg"


def _ingress_names(policies: Sequence[ClusterNetworkPolicy]) -> list[str]:
    return sorted({port.name for p in policies for r in p.ingress for port in r.ports if port.name})


def _draft_group(
    drafter: _Drafter,
    context: Context,
    tier: str,
    ordered: Sequence[ClusterNetworkPolicy],
    direction: Direction,
) -> _GroupDraft:
    policies = [p for p in ordered if _rules(p, direction)]  # T03: no rules, no effect
    tables = [drafter.memo.selection(p) for p in policies]
    members: dict[tuple[tuple[int, ...], tuple[NamedPort, ...]], list[Pod]] = {}
    selection: dict[tuple[str, object], tuple[int, ...]] = {}
    # Per namespace, the policies whose namespace selector matches it (T04: AND the pod
    # selector): most subjects are whole namespaces, so a pod's answer is often this list.
    by_namespace: dict[str, tuple[list[int], bool]] = {}
    for pod in context.addressed:
        if pod.host_network:
            continue  # never a subject (T04)
        shape = (pod.namespace, pod.labels)
        selecting = selection.get(shape)
        if selecting is None:
            labels = context.labels[pod.namespace]
            known = by_namespace.get(pod.namespace)
            if known is None:
                candidates = [
                    i
                    for i, p in enumerate(policies)
                    if _namespace_selected(tables[i], p, pod.namespace, labels)
                ]
                whole = all(policies[i].pod_selector is None for i in candidates)
                known = by_namespace[pod.namespace] = (candidates, whole)
            candidates, whole = known
            if whole:
                selecting = tuple(candidates)
            else:
                picked: list[int] = []
                for i in candidates:
                    table = tables[i]
                    found = table.get(shape)
                    if found is None:
                        found = table[shape] = admin_selects(policies[i], pod, labels)
                    if found:
                        picked.append(i)
                selecting = tuple(picked)
            selection[shape] = selecting
        if not selecting:
            continue
        named: tuple[NamedPort, ...] = ()
        if direction is Direction.INGRESS:
            named = tuple(
                NamedPort(name, protocol, resolve_named_port(name, protocol, pod.ports))
                for name in _ingress_names([policies[i] for i in selecting])
                for protocol in _PROTOCOLS
            )
        members.setdefault((selecting, named), []).append(pod)

    def sort_key(key: tuple[tuple[int, ...], tuple[NamedPort, ...]]) -> tuple[object, ...]:
        selecting, named = key
        return (selecting, tuple((n.name, n.protocol, n.port or -1) for n in named))

    classes = []
    for number, key in enumerate(sorted(members, key=sort_key), start=1):
        selecting, named = key
        chosen = [policies[i] for i in selecting]
        resolution = {(n.name, n.protocol): n.port for n in named}
        classes.append(
            _ClassDraft(
                number=number,
                policies=tuple(_policy_text(p) for p in chosen),
                named_ports=named,
                pods=tuple(members[key]),
                steps=tuple(
                    step
                    for policy in chosen
                    for step in drafter.runs(tier, policy, direction, resolution)
                ),
            )
        )
    return _GroupDraft(tier, direction, tuple(classes))


def _namespace_selected(
    table: dict[object, bool],
    policy: ClusterNetworkPolicy,
    namespace: str,
    labels: Mapping[str, str],
) -> bool:
    """Does ``policy``'s subject namespace selector match ``namespace`` (remembered in the
    subject's table under the namespace's name, next to its (namespace, labels) answers)?"""
    found = table.get(namespace)
    if found is None:
        found = table[namespace] = selector_matches(policy.namespace_selector, labels)
    return found


def _in_order(inventory: Inventory, tier: Tier) -> tuple[ClusterNetworkPolicy, ...]:
    """The policies of ``tier`` in evaluation order (T02, ``ClusterNetworkPolicy.order``), as
    ``semantics.index_for`` sorts them."""
    return tuple(sorted((p for p in inventory.admin_policies if p.tier is tier), key=_order))


def _order(policy: ClusterNetworkPolicy) -> tuple[int, int, str, str]:
    return policy.order


def draft_tiers(
    inventory: Inventory, context: Context, sets: AddressSets, *, memo: TierMemo
) -> TierDrafts:
    """The four groups (Admin/Baseline x egress/ingress) over address sets; call before the
    atom cut so that the tier peers' sets take part in it."""
    drafter = _Drafter(memo, memo.begin(context, NodeFacts.of(inventory)), sets)
    admin = _in_order(inventory, Tier.ADMIN)
    baseline = _in_order(inventory, Tier.BASELINE)
    drafts = tuple(
        _draft_group(drafter, context, tier, ordered, direction)
        for tier, ordered in ((ADMIN, admin), (BASELINE, baseline))
        for direction in (Direction.EGRESS, Direction.INGRESS)
    )
    return drafts
