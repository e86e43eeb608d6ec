"""Putting policies into force: the atomic ruleset swap and the S25 conntrack cut.

Why this module exists: an ``apply`` must change what packets see in one step and then stop
the connections the new policies deny. ``InstalledRuleset`` remembers the plan it installed
last, so that the next install sends only what differs (``ruleset_update``) in one ``nft -f``
transaction, or the whole table when the update cannot be trusted; ``cut_denied`` deletes the
tracked flows the new policies deny (S25), asking the prediction (``Verdict``) once per flow
shape and only about the namespaces whose policies changed when that is known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from typing import Protocol as TypingProtocol

from kubefence.api import Inventory, IPAddress, Protocol
from kubefence.dataplane.netns._conntrack import Flow, delete_argv, parse_conntrack
from kubefence.dataplane.netns._slots import NODE_V4, NODE_V6
from kubefence.dataplane.netns._system import read_sysctl, run
from kubefence.semantics import Settings

if TYPE_CHECKING:
    from kubefence.dataplane.nft import FlowLog, RulesetPlan

__all__ = [
    "InstalledRuleset",
    "PolicyChanges",
    "RulesetChange",
    "RulesetRenderer",
    "Verdict",
    "cut_denied",
    "default_renderer",
    "reference_verdict",
]


class RulesetRenderer(TypingProtocol):
    """``kubefence.dataplane.nft.render_ruleset``'s signature: the text for one ``nft -f``."""

    def __call__(
        self,
        inventory: Inventory,
        *,
        addresses: Mapping[str, tuple[IPAddress, ...]],
        settings: Settings,
        node_addresses: tuple[IPAddress, ...],
    ) -> str: ...


RulesetChange = Literal["full", "update", "unchanged"]

Verdict = Callable[[Inventory, str, str, int, Protocol], bool]
"""(inventory, "ns/pod" or IP, "ns/pod" or IP, port, protocol) -> allowed: the prediction."""


def default_renderer() -> RulesetRenderer:
    """``render_ruleset`` remembering its previous call (a sandbox keeps one for its life)."""
    from kubefence.dataplane.nft import MemoisedRenderer

    return MemoisedRenderer()


def reference_verdict(settings: Settings) -> Verdict:
    """The reference evaluator (``kubefence.semantics.decide``) as a ``Verdict``."""
    from kubefence.semantics import decide

    def verdict(inventory: Inventory, src: str, dst: str, port: int, protocol: Protocol) -> bool:
        return decide(inventory, src, dst, port=port, protocol=protocol, settings=settings).allowed

    return verdict


class InstalledRuleset:
    """The ruleset one ``Sandbox`` object installed last (its text and, when the renderer is
    kubefence's own, its plan), and whether nobody else installed one since (``sole_writer``,
    known after each ``install``)."""

    __slots__ = ("plan", "sole_writer", "text")

    def __init__(self) -> None:
        self.text: str | None = None
        self.plan: RulesetPlan | None = None
        self.sole_writer = False

    def install(
        self,
        renderer: RulesetRenderer,
        inventory: Inventory,
        *,
        addresses: Mapping[str, tuple[IPAddress, ...]],
        settings: Settings,
        node: str,
        path: Path,
        whole: bool = False,
        flow_log: FlowLog | None = None,
    ) -> RulesetChange:
        """Render and install the ruleset into namespace ``node`` (a copy goes to ``path``);
        returns how: "full" (the whole table replaced), "update" (only what differs from the
        plan installed last, see ``ruleset_update``) or "unchanged". Either way one atomic
        ``nft`` transaction.

        An update is only tried while ``path`` still holds the text installed last (no other
        process installed one since) and both plans are known (a renderer other than
        ``MemoisedRenderer`` gives text only: its text is installed whole unless it is the
        same as before); if ``nft`` refuses the update, the whole table is installed instead.
        ``flow_log`` adds the flow log rules; only ``MemoisedRenderer`` renders them (another
        renderer's text is installed as it is).
        """
        from kubefence.dataplane.nft import MemoisedRenderer, render_plan, ruleset_update

        plan = None
        if isinstance(renderer, MemoisedRenderer):
            plan = renderer.plan(
                inventory,
                addresses=addresses,
                settings=settings,
                node_addresses=(NODE_V4, NODE_V6),
                flow_log=flow_log,
            )
            text = render_plan(plan)
        else:
            text = renderer(
                inventory, addresses=addresses, settings=settings, node_addresses=(NODE_V4, NODE_V6)
            )
        installed, installed_plan = self.text, self.plan
        self.text = self.plan = None
        self.sole_writer = installed is not None and _read_text(path) == installed
        update = None
        if not whole and self.sole_writer:
            if text == installed:
                update = ""
            elif plan is not None and installed_plan is not None:
                update = ruleset_update(installed_plan, plan)
        how: RulesetChange = "full"
        if update == "":
            how = "unchanged"
        elif update is not None:
            done = run(["nft", "-f", "-"], stdin=update, netns=node, check=False)
            how = "update" if done.returncode == 0 else "full"
        # Written before a whole install, so that nft's complaint points into a file; a text
        # nft refused is never ``self.text``, so no update is ever computed from it.
        path.write_text(text)
        if how == "full":
            run(["nft", "-f", "-"], stdin=text, netns=node)
        self.text, self.plan = text, plan
        return how


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


class PolicyChanges:
    """Which namespaces' policies differ between two inventories, compared only for the
    namespaces asked about (comparing every policy of a large inventory costs more than the
    few verdicts it would save). ``None`` from ``of``: pods or namespaces differ as well, or
    the cluster-scoped tiered policies (or the Node objects their ``nodes`` peers read) do:
    those reach flows of any namespace."""

    __slots__ = ("_after", "_before", "_known")

    def __init__(self, before: Inventory, after: Inventory) -> None:
        self._before = before.policies_by_namespace
        self._after = after.policies_by_namespace
        self._known: dict[str, bool] = {}

    @classmethod
    def of(cls, before: Inventory, after: Inventory) -> PolicyChanges | None:
        if before.pods != after.pods or before.namespaces != after.namespaces:
            return None
        if before.admin_policies != after.admin_policies or (
            after.admin_policies and before.nodes != after.nodes
        ):
            return None
        return cls(before, after)

    def any_of(self, namespaces: Iterable[str]) -> bool:
        """Did the policies of any of ``namespaces`` change? A policy selects pods of its own
        namespace only (S01), so a flow's verdict reads its endpoints' namespaces' policies
        and nothing else of the policies."""
        for namespace in namespaces:
            changed = self._known.get(namespace)
            if changed is None:
                changed = self._before.get(namespace) != self._after.get(namespace)
                self._known[namespace] = changed
            if changed:
                return True
        return False


def cut_denied(
    inventory: Inventory,
    verdict: Verdict,
    *,
    node: str,
    scope: PolicyChanges | None = None,
) -> list[Flow]:
    """Delete the flows tracked in namespace ``node`` that ``inventory``'s policies deny (S25),
    asking ``verdict`` once per (protocol, source, destination, port) about the addresses the
    packets carry, so an ipBlock is judged on the family actually used.

    With ``scope`` (which namespaces' policies changed since the last check) only flows
    from or to a pod of a changed namespace are judged: every other flow was
    allowed at the last check or admitted since by the same table, and its verdict
    depends on nothing that changed.
    """
    if read_sysctl(node, "net.netfilter.nf_conntrack_count") == "0":
        return []  # nothing tracked: no process to start
    listing = run(["conntrack", "-L"], check=False, netns=node)
    owners: dict[IPAddress, set[str]] = {}
    if scope is not None:
        for pod in inventory.pods:
            for address in pod.ips:
                owners.setdefault(address, set()).add(pod.namespace)
    verdicts: dict[tuple[Protocol, IPAddress, IPAddress, int], bool] = {}
    cut = []
    for flow in parse_conntrack(listing.stdout.splitlines()):
        if scope is not None and not scope.any_of(
            owners.get(flow.src, set()) | owners.get(flow.dst, set())
        ):
            continue
        key = (flow.protocol, flow.src, flow.dst, flow.dport)
        if key not in verdicts:
            allowed = verdict(inventory, str(flow.src), str(flow.dst), flow.dport, flow.protocol)
            verdicts[key] = allowed
            if not allowed:  # one delete per (protocol, src, dst, dport), any source port
                run(delete_argv(flow, any_source_port=True), check=False, netns=node)
        if not verdicts[key]:
            cut.append(flow)
    return cut
