"""``TierPlan`` -> the tier maps, sets and chains of table ``inet kubefence``, as text.

Why this module exists: the tier chains are an addition to the NetworkPolicy table that
``_render`` writes, and only present when the input has tiered policies (otherwise the text is
byte for byte what it was before tiers). ``_render`` calls ``tier_blocks`` for the objects and
``TIER_ENTRY`` for what the hook chains jump to (importing this module when it renders, as this
module reuses its spelling helpers); how the chains work is in ``_plan``'s module
docstring ("Admin tiers").
"""

from __future__ import annotations

from dataclasses import dataclass

from kubefence.dataplane.nft._model import FlowLog
from kubefence.dataplane.nft._render import (  # the one spelling of the table's text
    _ADDRESS_TYPE as ADDRESS_TYPE,
)
from kubefence.dataplane.nft._render import (
    _INDENT as INDENT,
)
from kubefence.dataplane.nft._render import (
    FLOW_DENY_PREFIX,
    FLOW_LIMIT,
    FLOW_OVER,
)
from kubefence.dataplane.nft._render import (
    _element as element,
)
from kubefence.dataplane.nft._render import (
    _elements_block as elements_block,
)
from kubefence.dataplane.nft._render import (
    _quote as quote,
)
from kubefence.dataplane.nft._tier_model import ADMIN, TierClass, TierGroup, TierPlan, TierStep
from kubefence.semantics import Direction

__all__ = ["TIER_ENTRY", "TierPart", "tier_blocks", "tier_parts"]

_LOOKUP = "meta mark . meta l4proto . th dport"
#: The chain a hook jumps to for each direction when there are tiers.
TIER_ENTRY = {Direction.EGRESS: "egress_tiers", Direction.INGRESS: "ingress_tiers"}
_REST = {Direction.EGRESS: "egress_rest", Direction.INGRESS: "ingress_rest"}
_SIDE = {Direction.EGRESS: "saddr", Direction.INGRESS: "daddr"}
_WORD = {Direction.EGRESS: "egress", Direction.INGRESS: "ingress"}


def _map_lines(group: TierGroup, version: int) -> list[str]:
    items = [
        f"{d.address} comment {quote(d.pod)} : goto {group.classes[d.number - 1].chain}"
        for d in group.dispatch
        if d.address.version == version
    ]
    lines = [
        f"{INDENT}map {group.map_name}_v{version} {{",
        f"{INDENT * 2}type {ADDRESS_TYPE[version]} : verdict",
    ]
    lines.extend(elements_block(items, INDENT * 2))
    lines.append(f"{INDENT}}}")
    return lines


def _class_comment(cls: TierClass) -> list[str]:
    word = _WORD[cls.direction]
    lines = [f"{INDENT}# {cls.tier} {word} class {cls.number}: subject of, in order"]
    lines.extend(f"{INDENT}#   {policy}" for policy in cls.policies)
    for named in cls.named_ports:
        target = "undeclared: matches nothing" if named.port is None else str(named.port)
        lines.append(f"{INDENT}#   named port {named.name}/{named.protocol} -> {target}")
    steps = ", ".join(f"{step.name} ({step.action})" for step in cls.steps if step.elements)
    lines.append(f"{INDENT}# steps: {steps or 'none (no rule matches any address here)'}")
    lines.append(f"{INDENT}# pods: {', '.join(cls.pods)}")
    return lines


def _verdict(cls: TierClass, action: str) -> str:
    if action == "Accept":
        return "return"  # this side is allowed: back to the hook, the other side next
    if action == "Pass" and cls.tier == ADMIN:
        return f"goto {_REST[cls.direction]}"  # on to NetworkPolicy, then Baseline
    if action == "Pass":
        return "return"  # leaves the last tier: allowed
    return "drop"


def _log_prefix(step: TierStep, tier: str) -> str:
    """``kf deny ad_eg_s2 Admin policy egress[0]`` (+N when the step merged N more rules of
    that policy): the set, then the tier and the first rule, so that ``kubefence flows`` names
    them (its ``droppedBy``); within the 127 bytes the kernel keeps."""
    first = " ".join(step.rules[0].split(" ")[:2])  # "policy egress[0]"
    more = f" +{len(step.rules) - 1}" if len(step.rules) > 1 else ""
    return quote(f"{FLOW_DENY_PREFIX} {step.name} {tier} {first}{more}")  # at most 120 bytes


def _set_lines(step: TierStep) -> list[str]:
    """One step's set (none when it matches nothing here), with the rules it stands for."""
    if not step.elements:
        return []
    lines = [f"{INDENT}# {step.name} ({step.action}): {', '.join(step.rules)}"]
    lines.append(f"{INDENT}set {step.name} {{")
    lines.append(f"{INDENT * 2}type mark . inet_proto . inet_service")
    lines.append(f"{INDENT * 2}flags interval")
    lines.extend(elements_block([element(b) for b in step.elements], INDENT * 2))
    lines.append(f"{INDENT}}}")
    return lines


def _class_lines(cls: TierClass, flow_log: FlowLog | None, counters: bool = False) -> list[str]:
    lines = ["", *_class_comment(cls)]
    policies = ", ".join(p.split(" ")[0].partition("/")[2] for p in cls.policies)
    word = _WORD[cls.direction]
    lines.append(f"{INDENT}chain {cls.chain} {{")
    comment = f"{cls.tier.lower()} {word} class {cls.number}: {policies}"
    lines.append(f"{INDENT * 2}comment {quote(comment)}")
    for step in cls.steps:
        if not step.elements:
            continue
        verdict = _verdict(cls, step.action)
        count = "counter " if counters else ""  # the agent's per-policy metrics read it
        if verdict == "drop" and flow_log is not None:
            logged = (
                f'limit name "{FLOW_LIMIT}" log prefix {_log_prefix(step, cls.tier)} '
                f"group {flow_log.group}"
            )
            lines.append(f"{INDENT * 2}{_LOOKUP} @{step.name} {count}{logged} drop")
            lines.append(f'{INDENT * 2}{_LOOKUP} @{step.name} counter name "{FLOW_OVER}" drop')
        else:
            lines.append(f"{INDENT * 2}{_LOOKUP} @{step.name} {count}{verdict}")
    if cls.tier == ADMIN:
        lines.append(f"{INDENT * 2}goto {_REST[cls.direction]}")  # no match: as Pass
    lines.append(f"{INDENT}}}")
    return lines


def _direction_chains(direction: Direction) -> list[str]:
    side, word = _SIDE[direction], _WORD[direction]
    return [
        "",
        f"{INDENT}# {word}: Admin tier first (its chains return on Accept, drop on Deny, go to",
        f"{INDENT}# {_REST[direction]} on Pass or no match), then NetworkPolicy where it isolates,",
        f"{INDENT}# else the Baseline tier; no match anywhere: allowed (return).",
        f"{INDENT}chain {TIER_ENTRY[direction]} {{",
        f"{INDENT * 2}ip {side} vmap @admin_{word}_v4",
        f"{INDENT * 2}ip6 {side} vmap @admin_{word}_v6",
        f"{INDENT * 2}goto {_REST[direction]}",
        f"{INDENT}}}",
        f"{INDENT}chain {_REST[direction]} {{",
        f"{INDENT * 2}ip {side} vmap @{word}_v4",
        f"{INDENT * 2}ip6 {side} vmap @{word}_v6",
        f"{INDENT * 2}ip {side} vmap @baseline_{word}_v4",
        f"{INDENT * 2}ip6 {side} vmap @baseline_{word}_v6",
        f"{INDENT}}}",
    ]


@dataclass(frozen=True, slots=True)
class TierPart:
    """One named block of the tier part (a map, a set or a class chain) as ``tier_blocks``
    writes it (``lines``), and what the kernel keeps of it (``key``: comments dropped), so
    that ``_update`` can replace only the blocks that differ."""

    kind: str  # "map", "set" or "chain"
    group: str  # the group's map name (``admin_egress``): its maps jump to its chains
    lines: tuple[str, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(
            line for line in self.lines if line.strip() and not line.lstrip().startswith("#")
        )


def tier_parts(
    tiers: TierPlan, flow_log: FlowLog | None, *, counters: bool = False
) -> dict[str, TierPart]:
    """Every map, set and class chain of the tier part by name (the direction chains never
    change: they are not parts)."""
    parts: dict[str, TierPart] = {}
    for group in tiers.groups:
        for version in (4, 6):
            name = f"{group.map_name}_v{version}"
            parts[name] = TierPart("map", group.map_name, tuple(_map_lines(group, version)))
        for step in group.sets:
            if step.elements:
                parts[step.name] = TierPart("set", group.map_name, tuple(_set_lines(step)))
        for cls in group.classes:
            lines = tuple(_class_lines(cls, flow_log, counters))
            parts[cls.chain] = TierPart("chain", group.map_name, lines)
    return parts


def tier_blocks(tiers: TierPlan, flow_log: FlowLog | None, *, counters: bool = False) -> list[str]:
    """The tier maps, class sets and chains, and the per-direction entry chains."""
    lines = [
        "",
        f"{INDENT}# Admin tiers (ClusterNetworkPolicy): one verdict map per tier and direction",
        f"{INDENT}# to the subject's class chain, which holds its ordered rules as set lookups.",
    ]
    for group in tiers.groups:
        for version in (4, 6):
            lines.extend(_map_lines(group, version))
    for group in tiers.groups:
        if group.sets:
            lines.append("")
            lines.append(f"{INDENT}# {group.tier} {_WORD[group.direction]} steps: one set each")
        for step in group.sets:
            lines.extend(_set_lines(step))
        for cls in group.classes:
            lines.extend(_class_lines(cls, flow_log, counters))
    for direction in (Direction.EGRESS, Direction.INGRESS):
        lines.extend(_direction_chains(direction))
    return lines
