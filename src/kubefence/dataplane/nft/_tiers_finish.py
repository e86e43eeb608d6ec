"""Finishing the admin tiers' plan: steps over atom numbers, one verdict map per class.

Why this module exists: ``_tiers`` drafts the tier classes and their ordered steps over address
set ids before the atom cut; once the atoms are cut, this module writes each step over atom
numbers, folds each class's steps into its first-match verdict map (``_tiers_first``, kept
across calls by ``TierMemo``) and lists each group's dispatch. The draft types live here so that
both modules share them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubefence.api import Pod
from kubefence.dataplane.nft._entries import SymbolicBox
from kubefence.dataplane.nft._intervals import Box, Interval
from kubefence.dataplane.nft._memo import PlanMemo
from kubefence.dataplane.nft._model import Dispatch, NamedPort
from kubefence.dataplane.nft._peers import Context, address_key
from kubefence.dataplane.nft._tier_memo import TierMemo
from kubefence.dataplane.nft._tier_model import ADMIN, TierClass, TierGroup, TierPlan, TierStep
from kubefence.dataplane.nft._tiers_first import first_match_elements, label_of
from kubefence.semantics import Direction

__all__ = ["TierDrafts", "finish_tiers"]


def _short(direction: Direction) -> str:
    return "in" if direction is Direction.INGRESS else "eg"


@dataclass(frozen=True, slots=True)
class _StepDraft:
    action: str
    rules: tuple[str, ...]
    boxes: tuple[SymbolicBox, ...]
    key: tuple[object, ...]  # (kind, policy, direction, resolution read, run): one shared set


@dataclass(frozen=True, slots=True)
class _ClassDraft:
    number: int
    policies: tuple[str, ...]
    named_ports: tuple[NamedPort, ...]
    pods: tuple[Pod, ...]
    steps: tuple[_StepDraft, ...]


@dataclass(frozen=True, slots=True)
class _GroupDraft:
    tier: str
    direction: Direction
    classes: tuple[_ClassDraft, ...]


TierDrafts = tuple[_GroupDraft, ...]


def _verdicts(
    memo: TierMemo, tier: str, steps: Sequence[TierStep], *, logged: bool, counted: bool
) -> tuple[tuple[Box, str], ...]:
    """The class's verdict map (``first_match_elements``), remembered for the next call while
    its steps' labels and elements are the same objects (``PlanMemo.disjoint`` hands out the
    same element tuples while they are equal)."""
    labelled = [
        (label_of(tier, step.action, step.name, logged=logged, counted=counted), step.elements)
        for step in steps
    ]
    return memo.verdicts(labelled, first_match_elements)


def finish_tiers(
    context: Context,
    memo: PlanMemo,
    drafts: TierDrafts,
    atoms_of: Mapping[int, tuple[Interval, ...]],
    *,
    logged: bool = False,
    counted: bool = False,
) -> TierPlan:
    """The steps over atom numbers, each class's first-match verdict map (``logged``: its
    Deny elements go to their step's flow log chain; ``counted``: every step's elements go to
    the step's chain, which counts them), and the dispatch of each group."""
    tier_memo = memo.tiers if isinstance(memo.tiers, TierMemo) else TierMemo()
    tier_memo.begin_verdicts()
    groups = []
    for group in drafts:
        classes = []
        dispatch: list[Dispatch] = []
        shared: dict[tuple[object, ...], TierStep] = {}
        prefix = f"{'ad' if group.tier == ADMIN else 'bl'}_{_short(group.direction)}"
        for draft in group.classes:
            steps = []
            for step in draft.steps:
                found = shared.get(step.key)
                if found is None:
                    found = TierStep(
                        action=step.action,
                        rules=step.rules,
                        elements=memo.step_elements(step.boxes, atoms_of),
                        name=f"{prefix}_s{len(shared) + 1}",
                    )
                    shared[step.key] = found
                steps.append(found)
            classes.append(
                TierClass(
                    tier=group.tier,
                    direction=group.direction,
                    number=draft.number,
                    policies=draft.policies,
                    named_ports=draft.named_ports,
                    pods=tuple(p.key for p in draft.pods),
                    steps=tuple(steps),
                    verdicts=_verdicts(
                        tier_memo, group.tier, steps, logged=logged, counted=counted
                    ),
                )
            )
            dispatch.extend(
                Dispatch(address=a, pod=p.key, number=draft.number)
                for p in draft.pods
                for a in context.addresses[p.key]
            )
        dispatch.sort(key=lambda d: address_key(d.address))
        groups.append(
            TierGroup(
                group.tier,
                group.direction,
                tuple(classes),
                tuple(dispatch),
                sets=tuple(shared.values()),
            )
        )
    return TierPlan(tuple(groups))
