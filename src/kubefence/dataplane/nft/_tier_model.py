"""The plan's types for the admin tiers: tier classes, their ordered steps, and their dispatch.

Why this module exists: ``_tiers`` builds a ``TierPlan``, ``_tier_render`` writes it and
``RulesetPlan.verdict`` evaluates it; they share these frozen types. How the tier chains work
is documented once, in ``_plan``'s module docstring (section "Admin tiers").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubefence.dataplane.nft._intervals import Box
from kubefence.dataplane.nft._model import Dispatch, NamedPort
from kubefence.semantics import Direction

__all__ = ["ADMIN", "BASELINE", "TierClass", "TierGroup", "TierPlan", "TierStep"]

ADMIN = "Admin"
BASELINE = "Baseline"
_TIER_PREFIX = {ADMIN: "ad", BASELINE: "bl"}
_TIER_WORD = {ADMIN: "admin", BASELINE: "baseline"}


def _direction_prefix(direction: Direction) -> str:
    return "in" if direction is Direction.INGRESS else "eg"


@dataclass(frozen=True, slots=True)
class TierStep:
    """One set lookup of a tier chain: consecutive rules of one policy with the same verdict,
    merged. ``action`` is ``Accept``, ``Deny`` or ``Pass``; ``rules`` name them (``policy
    egress[2] (name)``) for the comments and the flow log. The set ``name`` (``ad_eg_s3``) is
    shared by every class chain of the group whose policies include it."""

    action: str
    rules: tuple[str, ...]
    elements: tuple[Box, ...]
    name: str

    def matches(self, atom: int, *, protocol: int, port: int) -> bool:
        return any(
            a[0] <= atom <= a[1] and p[0] <= protocol <= p[1] and q[0] <= port <= q[1]
            for a, p, q in self.elements
        )


@dataclass(frozen=True, slots=True)
class TierClass:
    """Pods of one tier and direction selected by the same tiered policies (and, for ingress,
    with the same resolution of the named ports those policies use): one chain."""

    tier: str  # ADMIN or BASELINE
    direction: Direction
    number: int  # 1-based within (tier, direction)
    policies: tuple[str, ...]  # "Kind/name (priority P)", in evaluation order
    named_ports: tuple[NamedPort, ...]
    pods: tuple[str, ...]
    steps: tuple[TierStep, ...]
    # The class's one verdict map (``_tiers_first``): disjoint (atom, protocol, port) boxes
    # with what the first matching step does there, ``Accept``, ``Deny`` or the name of the
    # Deny step whose flow log chain drops (``ad_eg_s2``); no element: as no match.
    verdicts: tuple[tuple[Box, str], ...] = ()

    @property
    def chain(self) -> str:
        return f"{_TIER_PREFIX[self.tier]}_{_direction_prefix(self.direction)}_c{self.number}"

    @property
    def verdict_map(self) -> str:
        """The name of the class's verdict map (``ad_eg_m3`` for chain ``ad_eg_c3``)."""
        return f"{_TIER_PREFIX[self.tier]}_{_direction_prefix(self.direction)}_m{self.number}"

    def first_match(self, atom: int, *, protocol: int, port: int) -> str | None:
        """What the class's verdict map answers: ``Accept``, ``Deny``, or None (no element:
        no match, or a match whose outcome is the same, an Admin Pass or a Baseline Accept or
        Pass)."""
        for (a, p, q), label in self.verdicts:
            if a[0] <= atom <= a[1] and p[0] <= protocol <= p[1] and q[0] <= port <= q[1]:
                return label if label in ("Accept", "Deny") else "Deny"
        return None

    def steps_first_match(self, atom: int, *, protocol: int, port: int) -> str | None:
        """The action of the first step that matches, None when none does (the steps one by
        one: what the verdict map must agree with)."""
        for step in self.steps:
            if step.matches(atom, protocol=protocol, port=port):
                return step.action
        return None


@dataclass(frozen=True, slots=True)
class TierGroup:
    """The classes of one tier and direction, and the verdict map that dispatches to them."""

    tier: str
    direction: Direction
    classes: tuple[TierClass, ...]
    dispatch: tuple[Dispatch, ...]  # sorted by (version, address)
    sets: tuple[TierStep, ...] = ()  # every distinct step of the classes, in set-name order

    @property
    def map_name(self) -> str:
        word = "ingress" if self.direction is Direction.INGRESS else "egress"
        return f"{_TIER_WORD[self.tier]}_{word}"

    def class_of(self, address: object) -> TierClass | None:
        for d in self.dispatch:
            if d.address == address:
                return self.classes[d.number - 1]
        return None


@dataclass(frozen=True, slots=True)
class TierPlan:
    """The four groups, in render order: Admin egress, Admin ingress, Baseline egress,
    Baseline ingress."""

    groups: tuple[TierGroup, ...]

    def group(self, tier: str, direction: Direction) -> TierGroup:
        return next(g for g in self.groups if g.tier == tier and g.direction is direction)

    def side(
        self,
        direction: Direction,
        subject: object,
        atom: int,
        *,
        protocol: int,
        port: int,
        network_policy: Callable[[], bool | None],
    ) -> bool:
        """What the table decides for one side of a new connection (T01): the Admin class
        chain, then (Pass or no match) NetworkPolicy when it isolates (``network_policy``,
        None when it does not), then the Baseline chain; no match anywhere allows."""
        admin = self.group(ADMIN, direction).class_of(subject)
        action = admin.first_match(atom, protocol=protocol, port=port) if admin else None
        if action == "Accept":
            return True
        if action == "Deny":
            return False
        isolated = network_policy()
        if isolated is not None:
            return isolated
        baseline = self.group(BASELINE, direction).class_of(subject)
        action = baseline.first_match(atom, protocol=protocol, port=port) if baseline else None
        return action != "Deny"
