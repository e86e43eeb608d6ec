"""Pure compiler: compiled policies + pod addresses -> one nftables ruleset text.

Why this package exists: the sandbox (``kubefence.dataplane.netns``) must enforce exactly what
the reference evaluator decides. This package turns an ``Inventory`` and the addresses the sandbox
gave each pod into the text of one ``nft -f`` transaction replacing table ``inet kubefence``. It
does no I/O; ``netns`` runs ``nft``. For a running sandbox, ``MemoisedRenderer`` re-renders
after a change without redoing the untouched policies (``MemoisedRenderer.plan`` gives the plan
behind the text), and ``ruleset_update`` compares the installed plan with the new one and writes
a smaller transaction replacing only what differs. How the table works and every
implementation-defined choice are documented in ``_plan``'s module docstring.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from kubefence.api import Inventory, IPAddress, IPNetwork
from kubefence.dataplane.nft._memo import PlanMemo, PodChanges
from kubefence.dataplane.nft._model import (
    PROTOCOL_NUMBERS,
    AtomRange,
    ClassSource,
    Dispatch,
    FlowLog,
    NamedPort,
    PodClass,
    RulesetPlan,
)
from kubefence.dataplane.nft._plan import plan_ruleset
from kubefence.dataplane.nft._render import (
    FLOW_ALLOW_PREFIX,
    FLOW_DENY_PREFIX,
    FLOW_OVER,
    TABLE,
    render_plan,
)
from kubefence.dataplane.nft._update import TableChange, ruleset_update, table_change
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = [
    "FLOW_ALLOW_PREFIX",
    "FLOW_DENY_PREFIX",
    "FLOW_OVER",
    "PROTOCOL_NUMBERS",
    "TABLE",
    "AtomRange",
    "ClassSource",
    "Dispatch",
    "FlowLog",
    "MemoisedRenderer",
    "NamedPort",
    "PlanMemo",
    "PodChanges",
    "PodClass",
    "RulesetPlan",
    "TableChange",
    "plan_ruleset",
    "render_plan",
    "render_ruleset",
    "ruleset_update",
    "table_change",
]


def render_ruleset(
    inventory: Inventory,
    *,
    addresses: Mapping[str, Sequence[IPAddress]],
    settings: Settings = DEFAULT_SETTINGS,
    node_addresses: Sequence[IPAddress] = (),
    memo: PlanMemo | None = None,
    flow_log: FlowLog | None = None,
    local: Collection[str] | None = None,
) -> str:
    """The whole text for one ``nft -f`` that atomically replaces table ``inet kubefence``.

    ``addresses`` maps "namespace/pod" to the addresses the sandbox assigned (used instead of
    ``pod.ips``); ``node_addresses`` are the node namespace's own addresses (S24); ``memo``
    lets a later call reuse this one's work (the text does not depend on it); ``flow_log``
    adds the log rules ``kubefence flows`` reads (``FlowLog``); ``local`` dispatches only
    those pods (a node's agent, see ``plan_ruleset``). Raises
    ``DataplaneError`` when two non-hostNetwork pods share an address.
    """
    plan = plan_ruleset(
        inventory,
        addresses=addresses,
        settings=settings,
        node_addresses=node_addresses,
        memo=memo,
        flow_log=flow_log,
        local=local,
    )
    return render_plan(plan)


class MemoisedRenderer:
    """``render_ruleset`` with one ``PlanMemo`` kept across calls: what a long-lived sandbox
    uses, so that re-rendering after a small change only redoes what the change touches."""

    __slots__ = ("memo",)

    def __init__(self) -> None:
        self.memo = PlanMemo()

    def plan(
        self,
        inventory: Inventory,
        *,
        addresses: Mapping[str, Sequence[IPAddress]],
        settings: Settings = DEFAULT_SETTINGS,
        node_addresses: Sequence[IPAddress] = (),
        flow_log: FlowLog | None = None,
        local: Collection[str] | None = None,
        held: Sequence[IPNetwork] = (),
        counters: bool = False,
    ) -> RulesetPlan:
        """``plan_ruleset`` with this renderer's memo: the plan behind ``__call__``'s text."""
        return plan_ruleset(
            inventory,
            addresses=addresses,
            settings=settings,
            node_addresses=node_addresses,
            memo=self.memo,
            flow_log=flow_log,
            local=local,
            held=held,
            counters=counters,
        )

    def __call__(
        self,
        inventory: Inventory,
        *,
        addresses: Mapping[str, Sequence[IPAddress]],
        settings: Settings = DEFAULT_SETTINGS,
        node_addresses: Sequence[IPAddress] = (),
        flow_log: FlowLog | None = None,
        local: Collection[str] | None = None,
    ) -> str:
        plan = self.plan(
            inventory,
            addresses=addresses,
            settings=settings,
            node_addresses=node_addresses,
            flow_log=flow_log,
            local=local,
        )
        return render_plan(plan)
