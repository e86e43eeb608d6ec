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

from kubefence.dataplane.nft._intervals import interval_text
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
    chains = [cls.chain for cls in group.classes]
    items = [
        f"{interval_text((int(d.address), int(d.address)), version)} comment {quote(d.pod)}"
        f" : goto {chains[d.number - 1]}"
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
    lines.append(f"{INDENT}# steps, first match wins: {steps or 'none (no rule matches here)'}")
    for step in cls.steps:
        if step.elements:
            lines.append(f"{INDENT}#   {step.name}: {', '.join(step.rules)}")
    lines.append(f"{INDENT}# pods: {', '.join(cls.pods)}")
    return lines


def _verdict(cls: TierClass, label: str) -> str:
    """A verdict map element's verdict: Accept returns (this side is allowed: back to the
    hook, the other side next), Deny drops, a step name goes to the step's own chain."""
    if label == "Accept":
        return "return"
    if label == "Deny":
        return "drop"
    return f"goto {label}"


def _log_prefix(step: TierStep, tier: str) -> str:
    """``kf deny ad_eg_s2 Admin policy egress[0]`` (+N when the step merged N more rules of
    that policy): the step, then the tier and the first rule, so that ``kubefence flows``
    names them (its ``droppedBy``); within the 127 bytes the kernel keeps."""
    first = " ".join(step.rules[0].split(" ")[:2])  # "policy egress[0]"
    more = f" +{len(step.rules) - 1}" if len(step.rules) > 1 else ""
    return quote(f"{FLOW_DENY_PREFIX} {step.name} {tier} {first}{more}")  # at most 120 bytes


def _verdict_map_lines(cls: TierClass) -> list[str]:
    """The class's first-match verdict map (none when no element differs from no match)."""
    if not cls.verdicts:
        return []
    lines = [f"{INDENT}map {cls.verdict_map} {{"]
    lines.append(f"{INDENT * 2}type mark . inet_proto . inet_service : verdict")
    lines.append(f"{INDENT * 2}flags interval")
    items = [f"{element(box)} : {_verdict(cls, label)}" for box, label in cls.verdicts]
    lines.extend(elements_block(items, INDENT * 2))
    lines.append(f"{INDENT}}}")
    return lines


def _class_lines(cls: TierClass) -> list[str]:
    lines = ["", *_class_comment(cls)]
    policies = ", ".join(p.split(" ")[0].partition("/")[2] for p in cls.policies)
    word = _WORD[cls.direction]
    lines.append(f"{INDENT}chain {cls.chain} {{")
    comment = f"{cls.tier.lower()} {word} class {cls.number}: {policies}"
    lines.append(f"{INDENT * 2}comment {quote(comment)}")
    if cls.verdicts:
        lines.append(f"{INDENT * 2}{_LOOKUP} vmap @{cls.verdict_map}")
    if cls.tier == ADMIN:
        lines.append(f"{INDENT * 2}goto {_REST[cls.direction]}")  # no match or Pass
    lines.append(f"{INDENT}}}")
    return lines


def _step_lines(
    step: TierStep, group: TierGroup, flow_log: FlowLog | None, *, counters: bool
) -> list[str]:
    """A step's own chain, which class verdict maps go to when the step must do more than
    its verdict: count the packet (``counters``: the agent's per-policy metrics read this
    chain's first rule), and for a Deny with the flow log, log it (rate-limited), then do what
    the step says (Accept: return; Deny: drop; Pass: on to NetworkPolicy in the Admin tier,
    allowed in the Baseline tier, as no match)."""
    lines = [f"{INDENT}chain {step.name} {{"]
    if counters:
        lines.append(f"{INDENT * 2}counter")
    if step.action == "Deny" and flow_log is not None:
        logged = (
            f'limit name "{FLOW_LIMIT}" log prefix {_log_prefix(step, group.tier)} '
            f"group {flow_log.group}"
        )
        lines.append(f"{INDENT * 2}{logged} drop")
        lines.append(f'{INDENT * 2}counter name "{FLOW_OVER}" drop')
    elif step.action == "Deny":
        lines.append(f"{INDENT * 2}drop")
    elif step.action == "Pass" and group.tier == ADMIN:
        lines.append(f"{INDENT * 2}goto {_REST[group.direction]}")
    else:
        lines.append(f"{INDENT * 2}return")
    lines.append(f"{INDENT}}}")
    return lines


def _stepped(group: TierGroup) -> list[TierStep]:
    """The steps some class's verdict map sends to their own chain."""
    used = {label for cls in group.classes for _, label in cls.verdicts}
    return [step for step in group.sets if step.name in used]


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
    """One named block of the tier part (a map, a class chain or a flow log chain) as
    ``tier_blocks`` writes it (``lines``), and what the kernel keeps of it (``key``: comments
    dropped), so that ``_update`` can replace only the blocks that differ."""

    kind: str  # "map" (dispatch), "vmap" (a class's verdicts), "chain" (a class), "step"
    group: str  # the group's map name (``admin_egress``): its maps jump to its chains
    lines: tuple[str, ...]
    key: tuple[str, ...]


def _part(kind: str, group: str, lines: list[str]) -> TierPart:
    key = tuple(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return TierPart(kind, group, tuple(lines), key)


class _Kept:
    """Rendered blocks of the last two plans by what they are rendered from (the element
    tuples by identity: the planner's memo hands out the same tuples while they are equal,
    and they are kept here so that no id is reused meanwhile). Rendering a plan after a small
    change then writes only the blocks that changed."""

    def __init__(self) -> None:
        self.now: dict[tuple[object, ...], tuple[object, TierPart]] = {}
        self.before: dict[tuple[object, ...], tuple[object, TierPart]] = {}
        self.plans: list[tuple[TierPlan, FlowLog | None, bool, dict[str, TierPart]]] = []

    def part(self, key: tuple[object, ...]) -> TierPart | None:
        found = self.now.get(key) or self.before.get(key)
        if found is None:
            return None
        self.now[key] = found
        return found[1]

    def keep(self, key: tuple[object, ...], keep: object, part: TierPart) -> TierPart:
        self.now[key] = (keep, part)
        return part


_KEPT = _Kept()


def tier_parts(
    tiers: TierPlan, flow_log: FlowLog | None, *, counters: bool = False
) -> dict[str, TierPart]:
    """Every dispatch map, class verdict map, class chain and step chain of the tier part by
    name, in text order (the direction chains never change: they are not parts).
    Remembered for the last few plans (by identity): ``render_plan`` and ``ruleset_update``
    both ask for the plan a sandbox installs."""
    for known, logged, counted, kept in _KEPT.plans:
        if known is tiers and logged == flow_log and counted == counters:
            return kept
    _KEPT.before, _KEPT.now = _KEPT.now, {}
    parts: dict[str, TierPart] = {}
    for group in tiers.groups:
        for version in (4, 6):
            name = f"{group.map_name}_v{version}"
            parts[name] = _part("map", group.map_name, _map_lines(group, version))
    for group in tiers.groups:
        for step in _stepped(group):
            lines = _step_lines(step, group, flow_log, counters=counters)
            parts[step.name] = _part("step", group.map_name, lines)
        for cls in group.classes:
            parts[cls.chain] = _part("chain", group.map_name, _class_lines(cls))
            if cls.verdicts:
                key = ("vmap", cls.verdict_map, id(cls.verdicts))
                found = _KEPT.part(key)
                if found is None:
                    found = _KEPT.keep(
                        key,
                        cls.verdicts,
                        _part("vmap", group.map_name, _verdict_map_lines(cls)),
                    )
                parts[cls.verdict_map] = found
    _KEPT.plans.append((tiers, flow_log, counters, parts))
    del _KEPT.plans[:-4]
    return parts


def tier_blocks(tiers: TierPlan, flow_log: FlowLog | None, *, counters: bool = False) -> list[str]:
    """The tier maps, class verdict maps and chains, and the per-direction entry chains."""
    lines = [
        "",
        f"{INDENT}# Admin tiers (ClusterNetworkPolicy): one verdict map per tier and direction",
        f"{INDENT}# to the subject's class chain, whose one verdict map lookup gives what the",
        f"{INDENT}# first matching rule of its policies does (Accept: return, Deny: drop).",
    ]
    for part in tier_parts(tiers, flow_log, counters=counters).values():
        lines.extend(part.lines)
    for direction in (Direction.EGRESS, Direction.INGRESS):
        lines.extend(_direction_chains(direction))
    return lines
