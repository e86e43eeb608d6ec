"""``RulesetPlan`` -> the text of one ``nft -f`` transaction that replaces ``inet kubefence``.

Why this module exists: the text is the contract with the kernel and with golden tests, so it is
produced in one place, deterministically (everything sorted, stable class and atom numbers), and
readable: a legend names the policy peers behind each atom, each class chain is preceded by ``#``
comments naming its policies, rule counts, named ports and pods, and every map element of a pod
carries the pod's name as an nft comment (shortened to nft's 128-byte limit).

Atomic replacement: nftables 1.0.6 has no ``destroy`` command, so the file starts with the usual
idiom ``table inet kubefence {}`` (creates the table if missing, a no-op otherwise) followed by
``delete table inet kubefence``; the new table follows, and ``nft -f`` commits the whole file as
one transaction, so packets see either the old table or the new one, never a gap.

A little over 400 lines: the class blocks' reuse across calls (``_KeptClasses``) sits next to
the one function it serves rather than in a module of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubefence.dataplane.nft._intervals import Box, interval_text
from kubefence.dataplane.nft._model import (
    PROTOCOL_NUMBERS,
    AtomRange,
    Dispatch,
    FlowLog,
    PodClass,
    RulesetPlan,
)
from kubefence.semantics import Direction

__all__ = [
    "FLOW_ALLOW_PREFIX",
    "FLOW_DENY_PREFIX",
    "FLOW_LIMIT",
    "FLOW_OVER",
    "MAPS",
    "TABLE",
    "class_chain_block",
    "class_set_block",
    "map_block",
    "render_plan",
]

TABLE = "inet kubefence"
MAPS = tuple(f"{kind}_v{version}" for kind in ("atoms", "egress", "ingress") for version in (4, 6))
FLOW_LIMIT = "flow_log"  # the named limit every log rule shares
FLOW_OVER = "flow_over"  # the named counter of new connections over that limit (not logged)
FLOW_ALLOW_PREFIX = "kf allow"
FLOW_DENY_PREFIX = "kf deny"  # followed by the class chain that dropped the packet
_COMMENT_MAX = 120  # nft refuses comments longer than 128 bytes
_LEGEND_MAX = 4  # peers named per atom in the legend
_PROTOCOL_NAMES = {number: protocol.value.lower() for protocol, number in PROTOCOL_NUMBERS.items()}
_ADDRESS_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
_FAMILY = {4: "ip", 6: "ip6"}
_INDENT = "\t"
_NEIGHBOUR_DISCOVERY = (
    "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, "
    "nd-neighbor-advert, nd-redirect }"
)


def _quote(text: str) -> str:
    """A string nft accepts between double quotes (names are DNS labels; be safe anyway)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        cleaned = text  # the usual case, without a pass over every character
    else:
        cleaned = "".join(c for c in text if c.isprintable() and c not in '"\\')
    if len(cleaned.encode()) > _COMMENT_MAX:
        cleaned = cleaned.encode()[: _COMMENT_MAX - 3].decode(errors="ignore") + "..."
    return f'"{cleaned}"'


def _protocol_text(low: int, high: int) -> str:
    if low == high:
        return _PROTOCOL_NAMES.get(low, str(low))
    return f"{low}-{high}"


def _port_text(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def _element(box: Box) -> str:
    atoms, protocol, port = box
    return f"{_port_text(*atoms)} . {_protocol_text(*protocol)} . {_port_text(*port)}"


def _atom_element(atom: AtomRange) -> str:
    address = interval_text((atom.low, atom.high), atom.version)
    comment = f" comment {_quote(atom.pod)}" if atom.pod else ""
    return f"{address}{comment} : {atom.atom}"


def _elements_block(items: list[str], indent: str) -> list[str]:
    """``elements = { a, b }`` one element per line (empty list: no elements line)."""
    if not items:
        return []
    if len(items) == 1:
        return [f"{indent}elements = {{ {items[0]} }}"]
    lines = [f"{indent}elements = {{"]
    lines.extend(f"{indent}{_INDENT}{item}," for item in items[:-1])
    lines.append(f"{indent}{_INDENT}{items[-1]}")
    lines.append(f"{indent}}}")
    return lines


def _direction_word(direction: Direction) -> str:
    return "ingress" if direction is Direction.INGRESS else "egress"


def _map_lines(
    name: str, version: int, dispatch: Iterable[Dispatch], prefix: str, verb: str = "jump"
) -> list[str]:
    items = [
        f"{d.address} comment {_quote(d.pod)} : {verb} {prefix}_c{d.number}"
        for d in dispatch
        if d.address.version == version
    ]
    lines = [
        f"{_INDENT}map {name}_v{version} {{",
        f"{_INDENT * 2}type {_ADDRESS_TYPE[version]} : verdict",
    ]
    lines.extend(_elements_block(items, _INDENT * 2))
    lines.append(f"{_INDENT}}}")
    return lines


def _class_comment(cls: PodClass) -> list[str]:
    word = _direction_word(cls.direction)
    lines = [f"{_INDENT}# {word} class {cls.number}: isolated by"]
    for source in cls.sources:
        rules = (
            f"{source.rules} {word} rule{'s' if source.rules != 1 else ''}"
            if source.rules
            else f"no {word} rules: allows nothing"
        )
        lines.append(f"{_INDENT}#   {source.policy} ({rules})")
    for named in cls.named_ports:
        target = "undeclared: matches nothing" if named.port is None else str(named.port)
        lines.append(f"{_INDENT}#   named port {named.name}/{named.protocol} -> {target}")
    lines.append(f"{_INDENT}# pods: {', '.join(cls.pods)}")
    return lines


def class_set_block(cls: PodClass) -> list[str]:
    """The class's set: what the class may talk to (no lines when it may talk to nothing)."""
    if not cls.elements:
        return []
    lines = [f"{_INDENT}set {cls.chain} {{"]
    lines.append(f"{_INDENT * 2}type mark . inet_proto . inet_service")
    lines.append(f"{_INDENT * 2}flags interval")
    lines.extend(_elements_block([_element(b) for b in cls.elements], _INDENT * 2))
    lines.append(f"{_INDENT}}}")
    return lines


def class_chain_block(
    cls: PodClass, *, flow_log: FlowLog | None = None, counters: bool = False
) -> list[str]:
    """The class's chain: one lookup in its set, then drop. Its text depends on the direction,
    number, the names of the isolating policies, whether there is a set, ``flow_log``
    (which logs the drop, or counts it when over the limit) and ``counters`` (a packet counter
    on the allowing and on the dropping rule), nothing else."""
    word = _direction_word(cls.direction)
    policies = ", ".join(s.policy for s in cls.sources)
    count = "counter " if counters else ""
    lines = [f"{_INDENT}chain {cls.chain} {{"]
    lines.append(f"{_INDENT * 2}comment {_quote(f'{word} class {cls.number}: {policies}')}")
    if cls.elements:
        lookup = f"meta mark . meta l4proto . th dport @{cls.chain}"
        lines.append(f"{_INDENT * 2}{lookup} {count}return")
    if flow_log is not None:
        prefix = f"{FLOW_DENY_PREFIX} {cls.chain}"
        lines.append(f"{_INDENT * 2}{count}{_flow_log_statement(flow_log, prefix)} drop")
        lines.append(f'{_INDENT * 2}counter name "{FLOW_OVER}" drop')
    else:
        lines.append(f"{_INDENT * 2}{count}drop")
    lines.append(f"{_INDENT}}}")
    return lines


def _flow_log_statement(flow_log: FlowLog, prefix: str) -> str:
    return f'limit name "{FLOW_LIMIT}" log prefix "{prefix}" group {flow_log.group}'


def _flow_log_objects(flow_log: FlowLog) -> list[str]:
    """The named limit and counter, and the chain that logs an accepted new connection."""
    return [
        "",
        f"{_INDENT}# Flow log (kubefence flows): the first packet of each new connection goes to",
        f"{_INDENT}# NFLOG group {flow_log.group} with its verdict, at most {flow_log.rate}/s "
        f"+ {flow_log.burst}; the rest is counted.",
        f"{_INDENT}limit {FLOW_LIMIT} {{",
        f"{_INDENT * 2}rate {flow_log.rate}/second burst {flow_log.burst} packets",
        f"{_INDENT}}}",
        f"{_INDENT}counter {FLOW_OVER} {{",
        f"{_INDENT}}}",
        f"{_INDENT}chain flow_allow {{",
        f"{_INDENT * 2}{_flow_log_statement(flow_log, FLOW_ALLOW_PREFIX)} return",
        f'{_INDENT * 2}counter name "{FLOW_OVER}"',
        f"{_INDENT}}}",
    ]


class _KeptClasses:
    """The class blocks of the last two ``render_plan`` calls, by the ``PodClass`` object
    (kept here, so that no id is reused meanwhile) and what else they are rendered from: the
    planner's memo hands out the same classes while nothing they are made of changed, so
    rendering after a change to the tiers alone does not write the NetworkPolicy classes
    again. Module-level like ``_tier_render``'s parts: ``render_plan`` is a plain function."""

    def __init__(self) -> None:
        self.now: dict[tuple[int, FlowLog | None, bool], tuple[PodClass, list[str]]] = {}
        self.before: dict[tuple[int, FlowLog | None, bool], tuple[PodClass, list[str]]] = {}

    def begin(self) -> None:
        self.before, self.now = self.now, {}

    def lines(self, cls: PodClass, flow_log: FlowLog | None, counters: bool) -> list[str]:
        key = (id(cls), flow_log, counters)
        found = self.now.get(key) or self.before.get(key)
        if found is None or found[0] is not cls:
            found = (cls, _class_lines(cls, flow_log, counters))
        self.now[key] = found
        return found[1]


_KEPT_CLASSES = _KeptClasses()


def _class_lines(cls: PodClass, flow_log: FlowLog | None, counters: bool) -> list[str]:
    return [
        "",
        *_class_comment(cls),
        *class_set_block(cls),
        *class_chain_block(cls, flow_log=flow_log, counters=counters),
    ]


def map_block(plan: RulesetPlan, name: str) -> list[str]:
    """One of the six maps (``atoms_v4``, ``egress_v6``, ...) with its elements."""
    kind, version = name.split("_v")
    if kind == "atoms":
        return _atom_map_lines(plan, int(version))
    # With tiers the class chains are reached by goto (their return ends the direction, so
    # that Baseline is skipped where NetworkPolicy isolates; see ``_plan``).
    verb = "jump" if plan.tiers is None else "goto"
    if kind == "egress":
        return _map_lines(kind, int(version), plan.egress_dispatch, "eg", verb)
    return _map_lines(kind, int(version), plan.ingress_dispatch, "in", verb)


def _atom_lookup(side: str) -> list[str]:
    """Rules that set the packet mark to the atom of its ``side`` address (0: none)."""
    return [
        f"{_INDENT * 2}meta mark set 0",
        f"{_INDENT * 2}meta mark set ip {side} map @atoms_v4",
        f"{_INDENT * 2}meta mark set ip6 {side} map @atoms_v6",
    ]


def _dispatch(direction: str, side: str, plan: RulesetPlan) -> list[str]:
    if plan.tiers is not None:  # one jump per direction into the tiers (``_tier_render``)
        from kubefence.dataplane.nft._tier_render import TIER_ENTRY

        chain = TIER_ENTRY[Direction.INGRESS if direction == "ingress" else Direction.EGRESS]
        return [f"{_INDENT * 2}jump {chain}"]
    return [
        f"{_INDENT * 2}ip {side} vmap @{direction}_v4",
        f"{_INDENT * 2}ip6 {side} vmap @{direction}_v6",
    ]


def _legend_lines(plan: RulesetPlan) -> list[str]:
    """``# atom N: <policy> <direction>[rule].<from|to>[peer], ...`` for each atom."""
    lines = []
    for number in sorted(plan.legend):
        origins = plan.legend[number]
        shown = ", ".join(origins[:_LEGEND_MAX])
        more = f" (+{len(origins) - _LEGEND_MAX} more)" if len(origins) > _LEGEND_MAX else ""
        lines.append(f"{_INDENT}# atom {number}: {shown}{more}")
    return lines


def _atom_map_lines(plan: RulesetPlan, version: int) -> list[str]:
    items = [_atom_element(a) for a in plan.atoms if a.version == version]
    lines = [
        f"{_INDENT}map atoms_v{version} {{",
        f"{_INDENT * 2}type {_ADDRESS_TYPE[version]} : mark",
        f"{_INDENT * 2}flags interval",
    ]
    lines.extend(_elements_block(items, _INDENT * 2))
    lines.append(f"{_INDENT}}}")
    return lines


HELD_SETS = ("held_v4", "held_v6", "known_v4", "known_v6")
HOLD_COMMENT = "kubefence: pod not planned yet"


def held_set_block(plan: RulesetPlan, name: str) -> list[str]:
    """``held_vN`` (the node's pod CIDRs) or ``known_vN`` (its planned pods' addresses)."""
    kind, version = name.split("_v")
    if kind == "held":
        items = [str(n) for n in plan.held if n.version == int(version)]
    else:
        items = [str(a) for a in plan.known if a.version == int(version)]
    lines = [f"{_INDENT}set {name} {{", f"{_INDENT * 2}type {_ADDRESS_TYPE[int(version)]}"]
    if kind == "held":
        lines.append(f"{_INDENT * 2}flags interval")
    lines.extend(_elements_block(items, _INDENT * 2))
    lines.append(f"{_INDENT}}}")
    return lines


def _hold_rules(plan: RulesetPlan, *, to_node: bool = False) -> list[str]:
    """Fail closed: drop what comes from or goes to a pod address not planned yet. ``to_node``
    (``input``): from such an address only (a pod's connection to its node is subject to its
    egress, S05), and never from the node's own addresses (a node whose bridge address lies
    in its pod CIDR talks to itself from it)."""
    if not plan.held:
        return []
    local = " fib saddr type != local" if to_node else ""
    return [
        f"{_INDENT * 2}{_FAMILY[version]} {side} @held_v{version} "
        f"{_FAMILY[version]} {side} != @known_v{version}{local} "
        f'drop comment "{HOLD_COMMENT}"'
        for side in (("saddr",) if to_node else ("saddr", "daddr"))
        for version in (4, 6)
    ]


def _hook_chain(name: str, comment: str, body: list[str]) -> list[str]:
    return [
        "",
        f"{_INDENT}# {comment}",
        f"{_INDENT}chain {name} {{",
        f"{_INDENT * 2}type filter hook {name} priority filter; policy accept;",
        f"{_INDENT * 2}ct state established,related accept",
        *body,
        f"{_INDENT * 2}meta mark set 0",
        f"{_INDENT}}}",
    ]


def render_plan(plan: RulesetPlan) -> str:
    """The ``nft -f`` text for ``plan`` (see the module docstring for the replacement idiom)."""
    lines = [
        "# Generated by kubefence: Kubernetes NetworkPolicy enforced on the forward hook.",
        "# Replaces table inet kubefence in one atomic transaction.",
        f"table {TABLE} {{}}",
        f"delete table {TABLE}",
        f"table {TABLE} {{",
        f"{_INDENT}# Peer atoms: addresses no policy peer tells apart share a number (0: none).",
    ]
    lines.extend(_legend_lines(plan))
    for name in MAPS:
        lines.extend(map_block(plan, name))
    node = {v: [str(a) for a in plan.node_addresses if a.version == v] for v in (4, 6)}
    for version in (4, 6):
        if node[version]:
            lines.append(f"{_INDENT}set node_v{version} {{")
            lines.append(f"{_INDENT * 2}type {_ADDRESS_TYPE[version]}")
            lines.extend(_elements_block(node[version], _INDENT * 2))
            lines.append(f"{_INDENT}}}")
    if plan.held:
        for version in (4, 6):
            lines.extend(held_set_block(plan, f"held_v{version}"))
            lines.extend(held_set_block(plan, f"known_v{version}"))
    if plan.flow_log is not None:
        lines.extend(_flow_log_objects(plan.flow_log))
    _KEPT_CLASSES.begin()
    for cls in (*plan.egress, *plan.ingress):
        lines.extend(_KEPT_CLASSES.lines(cls, plan.flow_log, plan.counters))
    if plan.tiers is not None:
        from kubefence.dataplane.nft._tier_render import tier_blocks

        lines.extend(tier_blocks(plan.tiers, plan.flow_log, counters=plan.counters))
    node_accept = [
        f"{_INDENT * 2}{_FAMILY[version]} saddr @node_v{version} accept"
        for version in (4, 6)
        if node[version]
    ]
    lines.extend(
        _hook_chain(
            "forward",
            "Every pod-to-pod packet crosses this hook: source egress, then destination ingress.",
            [
                *node_accept,
                *_hold_rules(plan),
                *_atom_lookup("daddr"),
                *_dispatch("egress", "saddr", plan),
                *_atom_lookup("saddr"),
                *_dispatch("ingress", "daddr", plan),
                *([f"{_INDENT * 2}ct state new jump flow_allow"] if plan.flow_log else []),
            ],
        )
    )
    lines.extend(
        _hook_chain(
            "input",
            "Pods' connections to the node's own addresses: source egress applies.",
            [
                f"{_INDENT * 2}{_NEIGHBOUR_DISCOVERY} accept",
                *_hold_rules(plan, to_node=True),
                *_atom_lookup("daddr"),
                *_dispatch("egress", "saddr", plan),
            ],
        )
    )
    if not plan.allow_from_node:
        lines.extend(
            _hook_chain(
                "output",
                "Traffic from the node is not exempt (S24 off): destination ingress applies.",
                [
                    f"{_INDENT * 2}{_NEIGHBOUR_DISCOVERY} accept",
                    *_atom_lookup("saddr"),
                    *_dispatch("ingress", "daddr", plan),
                ],
            )
        )
    lines.extend(["}", ""])
    return "\n".join(lines)
