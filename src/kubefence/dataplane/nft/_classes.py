"""Pod classes: pods that share one chain per direction, and the elements of its set.

Why this module exists: per-packet cost must not grow with the number of policies, so pods
isolated by the same policies (and, for ingress, with the same named-port resolution, S21) share
one chain whose one set holds the union of what those policies allow. ``draft_classes`` groups
the pods and collects each class's entries over address sets; ``finish`` rewrites them over atom
numbers once the atoms are cut, and lists the dispatch-map elements.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from kubefence.api import Labels, Pod, Protocol
from kubefence.dataplane.nft._entries import ANY, AddressSets, SymbolicBox, boxes_of
from kubefence.dataplane.nft._intervals import Interval
from kubefence.dataplane.nft._memo import PlanMemo, PolicyMemo
from kubefence.dataplane.nft._model import ClassSource, Dispatch, NamedPort, PodClass
from kubefence.dataplane.nft._peers import Context, address_key
from kubefence.semantics import CompiledPolicy, Direction, resolve_named_port

__all__ = ["ClassDraft", "draft_classes", "finish"]


def _ingress_names(policies: Sequence[CompiledPolicy]) -> list[tuple[str, Protocol]]:
    names = {
        (port.name, port.protocol)
        for policy in policies
        for rule in policy.ingress or ()
        for port in rule.ports
        if port.name is not None and port.protocol is not None
    }
    return sorted(names)


@dataclass(frozen=True, slots=True)
class ClassDraft:
    number: int
    sources: tuple[ClassSource, ...]
    named_ports: tuple[NamedPort, ...]
    pods: tuple[Pod, ...]
    boxes: tuple[SymbolicBox, ...]


def draft_classes(
    context: Context,
    sets: AddressSets,
    memos: Sequence[PolicyMemo],
    direction: Direction,
    *,
    local: Collection[str] | None = None,
) -> list[ClassDraft]:
    """Group the pods that get a chain in ``direction``; with ``local`` only those pods
    (``namespace/name``) are dispatched (an agent enforces its own node's pods)."""
    settings = context.settings
    compiled = [memo.compiled for memo in memos]
    # Pods that get a chain: addressed, not hostNetwork (see ``_plan``'s docstring), isolated.
    members: dict[tuple[tuple[int, ...], tuple[NamedPort, ...]], list[Pod]] = {}
    policies_of_namespace: dict[str, list[int]] = {}
    for index, policy in enumerate(compiled):
        if policy.rules(direction) is not None:
            policies_of_namespace.setdefault(policy.namespace, []).append(index)
    selection: dict[tuple[str, Labels], tuple[int, ...]] = {}  # what selects_pod looks at
    for pod in context.addressed if local is None else context.local_pods(local):
        if pod.host_network:
            continue
        selecting = selection.get((pod.namespace, pod.labels))
        if selecting is None:
            selecting = tuple(
                i
                for i in policies_of_namespace.get(pod.namespace, ())
                if memos[i].selects(pod, settings)  # S01, S03
            )
            selection[(pod.namespace, pod.labels)] = selecting
        if not selecting:
            continue  # not isolated in this direction: passes (S03)
        named: tuple[NamedPort, ...] = ()
        if direction is Direction.INGRESS:
            named = tuple(
                NamedPort(name, protocol, resolve_named_port(name, protocol, pod.ports))
                for name, protocol in _ingress_names([compiled[i] for i in selecting])
            )
        members.setdefault((selecting, named), []).append(pod)

    def sort_key(key: tuple[tuple[int, ...], tuple[NamedPort, ...]]) -> tuple[object, ...]:
        selecting, named = key
        return (
            selecting,
            tuple((n.name, n.protocol, -1 if n.port is None else n.port) for n in named),
        )

    cache: dict[tuple[int, tuple[NamedPort, ...]], list[SymbolicBox]] = {}
    drafts: list[ClassDraft] = []
    for number, key in enumerate(sorted(members, key=sort_key), start=1):
        selecting, named = key
        resolution = {(n.name, n.protocol): n.port for n in named}
        union: list[SymbolicBox] = []
        for i in selecting:
            policy_names = memos[i].port_names(direction)
            relevant = (
                tuple(n for n in named if (n.name, n.protocol) in policy_names) if named else ()
            )
            boxes = cache.get((i, relevant))
            if boxes is None:
                entries = memos[i].entries(context, direction, relevant, resolution)
                boxes = boxes_of(sets, entries)
                cache[(i, relevant)] = boxes
            union.extend(boxes)
        drafts.append(
            ClassDraft(
                number=number,
                sources=tuple(
                    ClassSource(
                        policy=f"{compiled[i].namespace}/{compiled[i].name}",
                        rules=len(compiled[i].rules(direction) or ()),
                    )
                    for i in selecting
                ),
                named_ports=named,
                pods=tuple(members[key]),
                boxes=tuple(union),
            )
        )
    return drafts


def finish(
    context: Context,
    memo: PlanMemo,
    drafts: Iterable[ClassDraft],
    direction: Direction,
    atoms_of: Mapping[int, tuple[Interval, ...]],
    atom_count: int,
) -> tuple[tuple[PodClass, ...], tuple[Dispatch, ...]]:
    """Turn address-set boxes into atom boxes, and list the dispatch elements."""
    everything = ((0, atom_count),)
    classes: list[PodClass] = []
    dispatch: list[Dispatch] = []
    for draft in drafts:
        boxes = [
            (atoms, protocol, port)
            for set_id, protocol, port in draft.boxes
            for atoms in (everything if set_id == ANY else atoms_of.get(set_id, ()))
        ]
        classes.append(
            PodClass(
                direction=direction,
                number=draft.number,
                sources=draft.sources,
                named_ports=draft.named_ports,
                pods=tuple(p.key for p in draft.pods),
                elements=memo.disjoint(boxes),
            )
        )
        dispatch.extend(
            Dispatch(address=a, pod=p.key, number=draft.number)
            for p in draft.pods
            for a in context.addresses[p.key]
        )
    dispatch.sort(key=lambda d: address_key(d.address))
    return tuple(classes), tuple(dispatch)
