"""Pure compiler: compiled policies + pod addresses -> one nftables ruleset text.

Why this package exists: the sandbox (``kubefence.dataplane.netns``) must enforce exactly what
the reference evaluator decides. This package turns an ``Inventory`` and the addresses the sandbox
gave each pod into the text of one ``nft -f`` transaction replacing table ``inet kubefence``. It
does no I/O; ``netns`` runs ``nft``. How the table works and every implementation-defined choice
are documented in ``_plan``'s module docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubefence.api import Inventory, IPAddress
from kubefence.dataplane.nft._plan import (
    PROTOCOL_NUMBERS,
    AtomRange,
    ClassSource,
    Dispatch,
    NamedPort,
    PodClass,
    RulesetPlan,
    plan_ruleset,
)
from kubefence.dataplane.nft._render import TABLE, render_plan
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = [
    "PROTOCOL_NUMBERS",
    "TABLE",
    "AtomRange",
    "ClassSource",
    "Dispatch",
    "NamedPort",
    "PodClass",
    "RulesetPlan",
    "plan_ruleset",
    "render_plan",
    "render_ruleset",
]


def render_ruleset(
    inventory: Inventory,
    *,
    addresses: Mapping[str, Sequence[IPAddress]],
    settings: Settings = DEFAULT_SETTINGS,
    node_addresses: Sequence[IPAddress] = (),
) -> str:
    """The whole text for one ``nft -f`` that atomically replaces table ``inet kubefence``.

    ``addresses`` maps "namespace/pod" to the addresses the sandbox assigned (used instead of
    ``pod.ips``); ``node_addresses`` are the node namespace's own addresses (S24). Raises
    ``DataplaneError`` when two non-hostNetwork pods share an address.
    """
    plan = plan_ruleset(
        inventory, addresses=addresses, settings=settings, node_addresses=node_addresses
    )
    return render_plan(plan)
