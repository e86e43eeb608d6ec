"""Keeping the node's nftables table equal to a snapshot: one atomic transaction per batch.

Why this module exists: the agent must change the kernel's rules in one step per change batch,
sending only what differs when it knows what is installed, and must never leave the node open:
at start it keeps the table a previous agent left (SIGKILL, upgrade) until the first full sync
replaces it, and when there is none it installs a *hold* table that drops new forwarded
connections until then (fail closed; ``fail_open`` installs nothing). The planner is
``dataplane.nft`` (``MemoisedRenderer``, ``ruleset_update``); the transaction goes through
``dataplane.netns.run`` into the node's namespace (or the current one).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kubefence.api import Inventory, IPAddress, IPNetwork
from kubefence.dataplane.netns import run
from kubefence.dataplane.nft import (
    TABLE,
    FlowLog,
    MemoisedRenderer,
    PodChanges,
    RulesetPlan,
    render_plan,
    ruleset_update,
)
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = ["HOLD_COMMENT", "Enforcer", "Installed", "hold_text"]

HOLD_COMMENT = "kubefence-agent: held until the first sync"

How = Literal["full", "update", "unchanged"]


# IPv6 neighbour discovery to and from the node: never held (as in the planned table's input
# chain), or a pod would lose its link to the node.
NEIGHBOUR_DISCOVERY = (
    "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, "
    "nd-neighbor-advert, nd-redirect }"
)


def hold_text(held: Sequence[IPNetwork] = ()) -> str:
    """A table that lets established flows on and drops every new forwarded connection, and
    every new connection from ``held`` (the node's pod CIDRs, not the node's own addresses in
    them) to the node itself: a pod's connection to its node is subject to its egress policy
    (S05), which is not planned yet."""
    lines = [
        f"table {TABLE} {{}}",
        f"delete table {TABLE}",
        f"table {TABLE} {{",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\tct state established,related accept",
        f'\t\tdrop comment "{HOLD_COMMENT}"',
        "\t}",
    ]
    cidrs = {v: sorted(str(n) for n in held if n.version == v) for v in (4, 6)}
    if held:
        lines += [
            "\tchain input {",
            "\t\ttype filter hook input priority filter; policy accept;",
            "\t\tct state established,related accept",
            f"\t\t{NEIGHBOUR_DISCOVERY} accept",
            *(
                f"\t\t{family} saddr {{ {', '.join(cidrs[version])} }} fib saddr type != local "
                f'drop comment "{HOLD_COMMENT}"'
                for version, family in ((4, "ip"), (6, "ip6"))
                if cidrs[version]
            ),
            "\t}",
        ]
    return "\n".join([*lines, "}", ""])


@dataclass(frozen=True, slots=True)
class Installed:
    """What one ``install`` did: how, and the table's size (class chains, set elements)."""

    how: How
    chains: int
    elements: int
    dispatched: int
    plan_seconds: float = 0.0  # planning (CPU in this process)
    nft_seconds: float = 0.0  # rendering and ``nft -f``


class Enforcer:
    """Owns table ``inet kubefence`` in one namespace (``netns`` None: the current one)."""

    def __init__(
        self,
        *,
        netns: str | None,
        settings: Settings = DEFAULT_SETTINGS,
        node_addresses: Sequence[IPAddress] = (),
        flow_log: FlowLog | None = None,
        counters: bool = False,
        held: Sequence[IPNetwork] = (),
    ) -> None:
        self.netns = netns
        self.held = tuple(held)  # the node's pod CIDRs: what the start's hold drops to the node
        self.settings = settings
        self.node_addresses = tuple(node_addresses)
        self.flow_log = flow_log  # the NFLOG rules ``kubefence flows --cluster`` reads
        self.counters = counters  # rule counters for the per-policy metrics (``_counters``)
        self.renderer = MemoisedRenderer()
        self.plan: RulesetPlan | None = None  # what this process installed last

    def _nft(self, text: str, *, check: bool = True) -> bool:
        done = run(["nft", "-f", "-"], stdin=text, netns=self.netns, check=check)
        return done.returncode == 0

    def table_exists(self) -> bool:
        family, name = TABLE.split()
        done = run(["nft", "list", "table", family, name], netns=self.netns, check=False)
        return done.returncode == 0

    def listing(self) -> str:
        family, name = TABLE.split()
        return run(["nft", "list", "table", family, name], netns=self.netns).stdout

    def start(self, *, fail_open: bool) -> str:
        """Before the first sync: keep a table left by an earlier agent ("kept"), else hold
        new connections ("held", also those of ``held`` pod CIDRs to the node) unless
        ``fail_open`` ("open")."""
        if self.table_exists():
            return "kept"
        if fail_open:
            return "open"
        self._nft(hold_text(self.held))
        return "held"

    def install(
        self,
        inventory: Inventory,
        *,
        addresses: Mapping[str, Sequence[IPAddress]],
        local: Collection[str],
        held: Sequence[IPNetwork] = (),
        changes: PodChanges | None = None,
    ) -> Installed:
        """Plan the node's table and install it: only what differs from the plan this process
        installed last (one ``nft -f`` transaction), or the whole table (also one) the first
        time or when ``nft`` refuses the update. ``held``: the pod CIDRs whose addresses that
        are no planned local pod are dropped (``plan_ruleset``). ``changes``: what the store
        knows changed since the inventory of the previous call (``PodChanges``)."""
        started = time.monotonic()
        self.renderer.memo.expect(changes)
        plan = self.renderer.plan(
            inventory,
            addresses=addresses,
            settings=self.settings,
            node_addresses=self.node_addresses,
            local=local,
            held=held,
            flow_log=self.flow_log,
            counters=self.counters,
        )
        planned = time.monotonic()
        how: How = "full"
        if self.plan is not None:
            update = ruleset_update(self.plan, plan)
            if update == "":
                how = "unchanged"
            elif update is not None and self._nft(update, check=False):
                how = "update"
        if how == "full":
            self._nft(render_plan(plan))
        self.plan = plan
        return Installed(
            how=how,
            chains=len(plan.egress) + len(plan.ingress),
            elements=sum(len(c.elements) for c in (*plan.egress, *plan.ingress)),
            dispatched=len(plan.egress_dispatch) + len(plan.ingress_dispatch),
            plan_seconds=planned - started,
            nft_seconds=time.monotonic() - planned,
        )
