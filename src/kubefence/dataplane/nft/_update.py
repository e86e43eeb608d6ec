"""The smaller ``nft -f`` transaction that turns one planned table into the next.

Why this module exists: replacing the whole table costs ``nft`` time in proportion to its size,
although a policy change usually touches one class chain or set and the dispatch maps. Given the
plan that is installed and the plan that should be, ``table_change`` compares them part by part
(each map's elements, each class's set elements and what its chain is made of) and
``ruleset_update`` writes one transaction that replaces only the parts that differ, each
rendered by ``_render`` exactly as in the whole text; ``nft -f`` commits it as a whole, so
packets still see the old table or the new one, never a mixture.

What it may replace: the sets of planned pod addresses (``known_vN``, when pods are held),
the atom and dispatch maps (flushed, then declared again with their new
elements), the class sets and class chains (``eg_cN``/``in_cN``), and the admin tiers'
dispatch maps, class verdict maps, class chains and step chains (flow log, counters)
(``_tier_render.tier_parts``; a map is declared again whenever a chain it jumps to is
replaced). A chain is deleted and added again rather than edited (nft
cannot change a chain's comment in place); the dispatch maps of its direction are flushed
first, as their elements jump to it. Everything else (the hook chains and the node sets, made
of the node addresses and ``allow_from_node``; the held pod CIDRs; the flow log; whether there
are tiers at all) must be unchanged, or there is no update (``None``) and the caller installs
the full text.
Plans that differ only in what the text shows as ``#`` comments (the legend, the pods of a
class) give ``""``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubefence.dataplane.nft._intervals import Box
from kubefence.dataplane.nft._model import PodClass, RulesetPlan
from kubefence.dataplane.nft._render import (
    MAPS,
    TABLE,
    class_chain_block,
    class_set_block,
    held_set_block,
    map_block,
)
from kubefence.dataplane.nft._tier_render import TierPart, tier_parts

__all__ = ["TableChange", "ruleset_update", "table_change"]

_DISPATCH = {"eg": ("egress_v4", "egress_v6"), "in": ("ingress_v4", "ingress_v6")}


@dataclass(frozen=True, slots=True)
class TableChange:
    """Which blocks of table ``inet kubefence`` differ between two plans, by name."""

    maps: frozenset[str]  # elements differ
    sets: frozenset[str]  # in both, elements differ
    added_sets: frozenset[str]
    removed_sets: frozenset[str]
    chains: frozenset[str]  # in both, text differs
    added_chains: frozenset[str]
    removed_chains: frozenset[str]
    tiers: frozenset[str] = frozenset()  # tier maps, sets and chains that differ or are new
    removed_tiers: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()  # ``known_vN`` sets (planned pod addresses) that differ

    def __bool__(self) -> bool:
        return any(
            (
                self.maps,
                self.sets,
                self.added_sets,
                self.removed_sets,
                self.chains,
                self.added_chains,
                self.removed_chains,
                self.tiers,
                self.removed_tiers,
                self.known,
            )
        )


def _map_elements(plan: RulesetPlan, *, atoms: bool = True) -> dict[str, tuple[object, ...]]:
    """Each map's elements, in render order (the pod comments are part of them); without
    the atom maps when ``atoms`` is false."""
    found: dict[str, tuple[object, ...]] = {}
    for version in (4, 6):
        if atoms:
            found[f"atoms_v{version}"] = tuple(a for a in plan.atoms if a.version == version)
        for kind, dispatch in (
            ("egress", plan.egress_dispatch),
            ("ingress", plan.ingress_dispatch),
        ):
            found[f"{kind}_v{version}"] = tuple(d for d in dispatch if d.address.version == version)
    return found


def _classes(plan: RulesetPlan) -> dict[str, PodClass]:
    return {cls.chain: cls for cls in (*plan.egress, *plan.ingress)}


def _chain_key(cls: PodClass) -> tuple[object, ...]:
    """What ``class_chain_block`` renders from (the name is the dictionary key)."""
    return (tuple(s.policy for s in cls.sources), bool(cls.elements))


def _set_elements(classes: Mapping[str, PodClass]) -> dict[str, tuple[Box, ...]]:
    """Each class set's elements; a class that may talk to nothing has no set."""
    return {name: cls.elements for name, cls in classes.items() if cls.elements}


def _fixed(plan: RulesetPlan) -> tuple[object, ...]:
    """What the hook chains and node sets are rendered from: never part of an update. Whether
    there are admin tiers is (the hooks jump to them); what the tiers hold is not."""
    return (
        plan.node_addresses,
        plan.allow_from_node,
        plan.flow_log,
        plan.counters,
        plan.tiers is None,
        plan.held,
    )


def _tier_parts(plan: RulesetPlan) -> dict[str, TierPart]:
    """The tier part of ``plan`` by name (``tier_parts`` remembers the last few plans: a
    sandbox compares the plan it installed last with the next one, every time)."""
    if plan.tiers is None:
        return {}
    return tier_parts(plan.tiers, plan.flow_log, counters=plan.counters)


def _compared(
    old: Mapping[str, object], new: Mapping[str, object]
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(in both but different, only in ``new``, only in ``old``)."""
    changed = frozenset(k for k in old.keys() & new.keys() if old[k] != new[k])
    return changed, frozenset(new.keys() - old.keys()), frozenset(old.keys() - new.keys())


def table_change(installed: RulesetPlan, wanted: RulesetPlan) -> TableChange | None:
    """The blocks that differ between the tables of two plans; ``None`` when the difference
    reaches beyond maps, class sets and class chains (the hook chains or node sets)."""
    if _fixed(installed) != _fixed(wanted):
        return None
    # The planner's memo hands the same atoms tuple on when the cut did not change.
    atoms = installed.atoms is not wanted.atoms
    old_maps = _map_elements(installed, atoms=atoms)
    new_maps = _map_elements(wanted, atoms=atoms)
    old_classes, new_classes = _classes(installed), _classes(wanted)
    sets = _compared(_set_elements(old_classes), _set_elements(new_classes))
    chains = _compared(
        {name: _chain_key(cls) for name, cls in old_classes.items()},
        {name: _chain_key(cls) for name, cls in new_classes.items()},
    )
    tiers = _compared(
        {name: (p.kind, p.key) for name, p in _tier_parts(installed).items()},
        {name: (p.kind, p.key) for name, p in _tier_parts(wanted).items()},
    )
    return TableChange(
        maps=frozenset(name for name in MAPS if old_maps.get(name) != new_maps.get(name)),
        sets=sets[0],
        added_sets=sets[1],
        removed_sets=sets[2],
        chains=chains[0],
        added_chains=chains[1],
        removed_chains=chains[2],
        tiers=tiers[0] | tiers[1],
        removed_tiers=tiers[2],
        known=frozenset(
            f"known_v{v}"
            for v in (4, 6)
            if installed.held
            and [a for a in installed.known if a.version == v]
            != [a for a in wanted.known if a.version == v]
        ),
    )


def _text(blocks: Iterable[list[str]]) -> list[str]:
    return ["\n".join(lines) for lines in blocks]


def ruleset_update(installed: RulesetPlan, wanted: RulesetPlan) -> str | None:
    """One ``nft -f`` transaction turning table ``inet kubefence`` as ``render_plan(installed)``
    made it into what ``render_plan(wanted)`` makes; ``""`` if the kernel's table would be the
    same, ``None`` when the change reaches beyond maps, class sets and class chains (install
    ``render_plan(wanted)`` whole instead)."""
    change = table_change(installed, wanted)
    if change is None:
        return None
    if not change:
        return ""
    classes = _classes(wanted)
    chains = sorted(change.chains | change.removed_chains)
    maps = set(change.maps)
    for chain in chains:
        maps.update(_DISPATCH[chain[:2]])  # their elements jump to a chain about to go
    # The tier part, by name. References: dispatch maps -> class chains -> their verdict
    # maps -> step chains. So: dispatch maps flushed (also those whose elements go to a
    # chain about to go), verdict maps flushed (also those whose elements go to a step chain
    # about to go), chains deleted, verdict maps no longer wanted deleted; then everything
    # that differs declared again, referenced before referring.
    old_tiers, new_tiers = _tier_parts(installed), _tier_parts(wanted)
    gone = change.tiers & old_tiers.keys() | change.removed_tiers
    tier_chains = sorted(n for n in gone if old_tiers[n].kind == "chain")
    step_chains = sorted(n for n in gone if old_tiers[n].kind == "step")
    tier_maps = {n for n in change.tiers if new_tiers[n].kind == "map"}
    for chain in tier_chains:
        tier_maps.update(f"{old_tiers[chain].group}_v{v}" for v in (4, 6))
    vmaps = {n for n in gone if old_tiers[n].kind == "vmap"}
    for chain in step_chains:  # every verdict map of its group may jump to it
        group = old_tiers[chain].group
        vmaps.update(n for n, p in old_tiers.items() if p.kind == "vmap" and p.group == group)
    refreshed = {n for n in vmaps if n in new_tiers}
    lines = [f"# kubefence: update of table {TABLE} (one transaction)"]
    lines += [f"flush map {TABLE} {name}" for name in sorted(maps | tier_maps | vmaps)]
    for chain in [*chains, *tier_chains, *step_chains]:
        lines += [f"flush chain {TABLE} {chain}", f"delete chain {TABLE} {chain}"]
    lines += [f"delete map {TABLE} {name}" for name in sorted(vmaps - refreshed)]
    lines += [f"flush set {TABLE} {name}" for name in sorted(change.sets)]
    lines += [f"flush set {TABLE} {name}" for name in sorted(change.known)]
    lines += [f"delete set {TABLE} {name}" for name in sorted(change.removed_sets)]
    declared = _text(class_set_block(classes[n]) for n in sorted(change.sets | change.added_sets))
    declared += _text(held_set_block(wanted, name) for name in sorted(change.known))
    flow_log = wanted.flow_log
    counters = wanted.counters
    declared += _text(
        class_chain_block(classes[n], flow_log=flow_log, counters=counters)
        for n in chains
        if n in classes
    )
    declared += _text(
        class_chain_block(classes[n], flow_log=flow_log, counters=counters)
        for n in sorted(change.added_chains)
    )
    declared += _text(map_block(wanted, name) for name in sorted(maps))
    # Tier step chains, verdict maps, class chains, then dispatch maps, as the whole text
    # writes each.
    for kind, extra in (
        ("step", frozenset()),
        ("vmap", refreshed),
        ("chain", frozenset()),
        ("map", tier_maps),
    ):
        declared += [
            "\n".join(new_tiers[name].lines)
            for name in sorted(change.tiers | extra)
            if name in new_tiers and new_tiers[name].kind == kind
        ]
    if declared:
        lines.append(f"table {TABLE} {{")
        lines += declared
        lines.append("}")
    return "\n".join(lines) + "\n"
