"""The memoised parts of planning: per-policy work and the pod side, kept across calls.

Why this module exists: a running sandbox re-plans after every ``apply``, and with a thousand
policies recompiling and re-matching all of them for one changed policy is most of the cost.
``PlanMemo`` keeps what is a pure function of its key (see its docstring); ``PolicyMemo`` is one
policy's share. ``plan_ruleset`` gives the same plan with or without a memo.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubefence.api import Inventory, IPAddress, Labels, NetworkPolicy, Pod, Protocol
from kubefence.dataplane.nft._atoms import Atoms, cut_atoms
from kubefence.dataplane.nft._entries import AddressSets, Entry, SymbolicBox, policy_entries
from kubefence.dataplane.nft._intervals import Box, Interval, disjoint_boxes
from kubefence.dataplane.nft._model import NamedPort
from kubefence.dataplane.nft._peers import Context
from kubefence.semantics import (
    CompiledPolicy,
    Direction,
    PeerMatcher,
    Settings,
    compile_policy,
    selects_pod,
)

__all__ = ["ClassDrafts", "PlanMemo", "PodChanges", "PolicyMemo"]


@dataclass(frozen=True, slots=True)
class ClassDrafts:
    """The NetworkPolicy side of one call before the atom cut: the address sets it registered
    (the tiers register theirs after, into a copy) and the two directions' class drafts
    (``_classes.ClassDraft``, immutable)."""

    sets: AddressSets
    egress: tuple[object, ...]
    ingress: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class PodChanges:
    """What a caller that keeps its own copy of the cluster (the agent's store) knows about
    the next inventory it plans: the pods whose model or addresses may differ from the one
    it planned at ``base`` (key -> the pod in the inventory now, None when it is not there),
    and that nothing else about the pods or namespaces changed. ``version`` names this
    inventory for the next call's ``base``. Given to ``PlanMemo.expect``, it spares the
    planner a look at every pod; a ``base`` the memo did not plan last is ignored."""

    base: int | None  # None: the changes are not known (the planner looks at every pod)
    version: int
    pods: Mapping[str, Pod | None]


@dataclass(frozen=True, slots=True)
class PolicyMemo:
    """One policy's compiled form and, for one ``Context``, which pod labels it selects and
    the address-set entries it allows per (direction, relevant named-port resolution)."""

    compiled: CompiledPolicy
    names: dict[Direction, frozenset[tuple[str, Protocol | None]]] = field(default_factory=dict)
    selected: dict[Labels, bool] = field(default_factory=dict)
    allowed: dict[tuple[Direction, tuple[NamedPort, ...]], tuple[Entry, ...]] = field(
        default_factory=dict
    )
    peers: list[frozenset[PeerMatcher]] = field(default_factory=list)  # computed once

    def depends_on(self, affected: frozenset[PeerMatcher]) -> bool:
        """Does what the policy allows read one of ``affected``'s address sets?"""
        if not self.peers:
            self.peers.append(
                frozenset(
                    peer
                    for direction in (Direction.INGRESS, Direction.EGRESS)
                    for rule in self.compiled.rules(direction) or ()
                    for peer in rule.peers
                )
            )
        return not self.peers[0].isdisjoint(affected)

    def port_names(self, direction: Direction) -> frozenset[tuple[str, Protocol | None]]:
        """The (name, protocol) of every named port the policy uses in ``direction``."""
        found = self.names.get(direction)
        if found is None:
            found = frozenset(
                (p.name, p.protocol)
                for rule in self.compiled.rules(direction) or ()
                for p in rule.ports
                if p.name is not None
            )
            self.names[direction] = found
        return found

    def selects(self, pod: Pod, settings: Settings) -> bool:
        """``selects_pod`` for a pod of the policy's namespace that is not hostNetwork (only
        its labels then matter)."""
        found = self.selected.get(pod.labels)
        if found is None:
            found = selects_pod(self.compiled, pod, settings=settings)
            self.selected[pod.labels] = found
        return found

    def entries(
        self,
        context: Context,
        direction: Direction,
        relevant: tuple[NamedPort, ...],
        resolution: Mapping[tuple[str, Protocol], int | None],
    ) -> tuple[Entry, ...]:
        """``policy_entries``, where ``relevant`` is the part of ``resolution`` it reads."""
        key = (direction, relevant)
        found = self.allowed.get(key)
        if found is None:
            found = policy_entries(context, self.compiled, direction, resolution)
            self.allowed[key] = found
        return found


class PlanMemo:
    """What ``plan_ruleset`` may reuse from its previous call, so that a sandbox re-planned
    after one policy changed does not redo the work for the thousand others.

    Everything kept is a pure function of its key: the pod-side look-ups (``Context``) of the
    pods, their addresses, the namespaces and the settings, updated for the pods that changed
    (``Context.updated``; a new one when the settings change); per policy (compared by value,
    the same object found first by identity) its compiled form, which labels it selects (a
    function of the labels and settings), and what each direction allows while none of the
    address sets it reads changed; the atom cut of the previous call while the address sets
    and pod addresses are equal; the NetworkPolicy class drafts (and the address sets they
    registered) while the context, the policy memos and ``local`` are the same, and their
    finished classes while the drafts and atoms are the same objects, so a change to the
    tiered policies alone leaves the NetworkPolicy side untouched (and, by identity, its
    rendered blocks, see ``_render``); tier steps' elements by their boxes while the atoms
    are the same. Only the previous call's policies are kept, so the memo does not grow with
    the number of calls.
    """

    __slots__ = (
        "_atoms",
        "_changes",
        "_classes",
        "_context",
        "_disjoint",
        "_finished",
        "_policies",
        "_previous_disjoint",
        "_previous_steps",
        "_settings",
        "_steps",
        "_steps_for",
        "_version",
        "tiers",
    )

    def __init__(self) -> None:
        self.tiers: object = None  # the admin tiers' own memo (``_tiers.TierMemo``), if any
        self._settings: Settings | None = None
        self._atoms: tuple[object, Atoms, int] | None = None
        self._context: Context | None = None
        self._policies: dict[tuple[str, str], tuple[NetworkPolicy, PolicyMemo]] = {}
        self._disjoint: dict[tuple[Box, ...], tuple[Box, ...]] = {}
        self._previous_disjoint: dict[tuple[Box, ...], tuple[Box, ...]] = {}
        self._changes: PodChanges | None = None
        self._version: int | None = None  # ``PodChanges.version`` of the last call, if any
        # the last call's class drafts, by the context and policy memos (identity) and ``local``
        self._classes: tuple[Context, tuple[PolicyMemo, ...], object, ClassDrafts] | None = None
        # ``_classes.finish`` per direction, by the drafts and the atoms (identity)
        self._finished: dict[object, tuple[object, object, object]] = {}
        # tier steps' elements by their boxes, for one ``atoms_of`` (identity), two calls
        self._steps_for: object = None
        self._steps: dict[tuple[SymbolicBox, ...], tuple[Box, ...]] = {}
        self._previous_steps: dict[tuple[SymbolicBox, ...], tuple[Box, ...]] = {}

    def expect(self, changes: PodChanges | None) -> None:
        """What the next call's inventory changed since an earlier one (see ``PodChanges``)."""
        self._changes = changes

    def begin(self) -> None:
        """Start a call: keep the previous call's class elements, forget older ones."""
        self._previous_disjoint, self._disjoint = self._disjoint, {}
        self._previous_steps, self._steps = self._steps, {}

    def finished(self, key: object, drafts: object, atoms_of: object) -> object | None:
        """What ``remember_finished`` kept under ``key`` for the same ``drafts`` and
        ``atoms_of`` objects (``_classes.finish`` is a pure function of them and the
        context, and ``class_drafts`` hands out the same drafts only for the same context)."""
        known = self._finished.get(key)
        if known is None or known[0] is not drafts or known[1] is not atoms_of:
            return None
        return known[2]

    def remember_finished(
        self, key: object, drafts: object, atoms_of: object, done: object
    ) -> None:
        self._finished[key] = (drafts, atoms_of, done)

    def step_elements(
        self, boxes: tuple[SymbolicBox, ...], atoms_of: Mapping[int, tuple[Interval, ...]]
    ) -> tuple[Box, ...]:
        """A tier step's elements: its boxes over atom numbers, made disjoint (``disjoint``),
        remembered for two calls while the atoms (the ``atoms_of`` object) stay the same: a
        step's set ids are numbered again each call, but equal boxes mean equal elements."""
        if self._steps_for is not atoms_of:
            self._steps_for = atoms_of
            self._steps, self._previous_steps = {}, {}
        found = self._steps.get(boxes)
        if found is None:
            found = self._previous_steps.get(boxes)
            if found is None:
                found = self.disjoint(
                    (atoms, protocol, port)
                    for set_id, protocol, port in boxes
                    for atoms in atoms_of.get(set_id, ())
                )
            self._steps[boxes] = found
        return found

    def context(
        self,
        inventory: Inventory,
        addresses: Mapping[str, Sequence[IPAddress]],
        settings: Settings,
    ) -> Context:
        """The pod side for this call: the previous one updated for the pods and namespaces
        that changed (``Context.updated``), forgetting what each policy allowed only where it
        reads an address set that may differ; a new one when the settings changed."""
        changes, self._changes = self._changes, None
        hint = None
        if changes is not None and changes.base is not None and changes.base == self._version:
            hint = changes.pods
        self._version = None if changes is None else changes.version
        updated = None
        if self._context is not None and self._settings == settings:
            updated = self._context.updated(inventory, addresses, hint)
        if updated is None:
            self._context = Context(inventory, addresses, settings)
            self._settings = settings
            # Selection and allowed entries were computed against the old pod side.
            self._policies = {
                name: (policy, PolicyMemo(memo.compiled, peers=memo.peers))
                for name, (policy, memo) in self._policies.items()
            }
            return self._context
        context, affected = updated
        if context is not self._context:
            self._context = context
            # Selection is by labels alone (same settings); only what a policy allows over
            # an affected peer's addresses is computed again.
            self._policies = {
                name: (
                    (policy, memo)
                    if not memo.allowed or not memo.depends_on(affected)
                    else (
                        policy,
                        PolicyMemo(
                            memo.compiled,
                            names=memo.names,
                            selected=memo.selected,
                            peers=memo.peers,
                        ),
                    )
                )
                for name, (policy, memo) in self._policies.items()
            }
        return context

    def policies(self, policies: Sequence[NetworkPolicy]) -> list[PolicyMemo]:
        """One memo per policy, in order; call after ``context`` for the same inventory."""
        kept: dict[tuple[str, str], tuple[NetworkPolicy, PolicyMemo]] = {}
        found: list[PolicyMemo] = []
        for policy in policies:
            name = (policy.namespace, policy.name)
            known = self._policies.get(name)
            if known is not None and (known[0] is policy or known[0] == policy):
                memo = known[1]
            else:
                memo = PolicyMemo(compile_policy(policy))
            kept[name] = (policy, memo)
            found.append(memo)
        self._policies = kept
        return found

    def class_drafts(
        self,
        context: Context,
        memos: Sequence[PolicyMemo],
        local: Collection[str] | None,
    ) -> ClassDrafts | None:
        """The previous call's ``ClassDrafts`` (its sets copied, for the caller to add to) when
        they are a function of the same arguments: the same ``Context`` object (``context``
        returns the previous one only when no pod, address or namespace changed), the same
        ``PolicyMemo`` objects in the same order (a policy equal by value keeps its memo, and a
        memo is replaced when what it allows may differ) and an equal ``local``. So a change to
        the tiered policies alone does not group the pods and policies again."""
        known = self._classes
        if (
            known is None
            or known[0] is not context
            or len(known[1]) != len(memos)
            or any(a is not b for a, b in zip(known[1], memos, strict=True))
            or known[2] != _local_key(local)
        ):
            return None
        drafts = known[3]
        return ClassDrafts(_copy_sets(drafts.sets), drafts.egress, drafts.ingress)

    def keep_class_drafts(
        self,
        context: Context,
        memos: Sequence[PolicyMemo],
        local: Collection[str] | None,
        drafts: ClassDrafts,
    ) -> None:
        """Remember this call's ``ClassDrafts`` (call before anything else adds to its sets)."""
        kept = ClassDrafts(_copy_sets(drafts.sets), drafts.egress, drafts.ingress)
        self._classes = (context, tuple(memos), _local_key(local), kept)

    def atoms(self, sets: AddressSets, pod_of: dict[tuple[int, int], str]) -> Atoms:
        """``cut_atoms`` (a pure function of the sets' ranges and origins and ``pod_of``),
        remembered for the previous call: a pod change that moves no address between sets
        (most label changes) cuts the same atoms."""
        key = (list(sets.ranges), list(sets.origins), pod_of)
        if self._atoms is None or self._atoms[0] != key:
            atoms = cut_atoms(sets, pod_of)
            self._atoms = (key, atoms, max((r.atom for r in atoms[0]), default=0))
        return self._atoms[1]

    def atom_count(self) -> int:
        """The highest atom number of the last ``atoms`` (0: none), counted once per cut."""
        return 0 if self._atoms is None else self._atoms[2]

    def disjoint(self, boxes: Iterable[Box]) -> tuple[Box, ...]:
        """``disjoint_boxes`` (a pure function of ``boxes``), remembered for two calls."""
        key = tuple(boxes)
        found = self._disjoint.get(key)
        if found is None:
            found = self._previous_disjoint.get(key)
            if found is None:
                found = disjoint_boxes(key)
            self._disjoint[key] = found
        return found


def _local_key(local: Collection[str] | None) -> object:
    return None if local is None else frozenset(local)


def _copy_sets(sets: AddressSets) -> AddressSets:
    """A copy that adding to does not change ``sets`` (ranges are never changed in place)."""
    copy = AddressSets()
    copy.ids = dict(sets.ids)
    copy.ranges = list(sets.ranges)
    copy.origins = [set(origins) for origins in sets.origins]
    return copy
