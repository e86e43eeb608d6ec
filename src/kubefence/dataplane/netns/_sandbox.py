"""The sandbox cluster: a node namespace, one namespace per pod, nftables, a server, probes.

Why this module exists: it turns an ``Inventory`` into running network namespaces whose traffic
is filtered by the rendered nftables ruleset, keeps them in step with ``apply``, and answers
"what do real packets do?". ``Sandbox`` holds the sequence (what happens in which order, what
is recorded first); the steps live beside it: topology and ``down`` in ``_topology``, the
ruleset swap and the S25 conntrack cut in ``_apply``, probing in ``_matrix``, the recorded
state in ``_state``, addresses in ``_slots``. It talks to the policy side through one narrow
seam: the ruleset renderer (``render_ruleset``), a verdict function (the reference evaluator,
for strict-mode conntrack cuts) and the ``Inventory`` itself.

Order in ``up``: namespaces, then the ruleset, then links and routes, then forwarding, so that
no packet is ever forwarded before the policies are in place. State is saved before each
resource is made, so ``down`` (and ``up`` after a crash) can remove everything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubefence.api import Inventory, Protocol
from kubefence.dataplane.netns._apply import (
    InstalledRuleset,
    PolicyChanges,
    RulesetChange,
    RulesetRenderer,
    Verdict,
    cut_denied,
    default_renderer,
    reference_verdict,
)
from kubefence.dataplane.netns._conntrack import Flow
from kubefence.dataplane.netns._matrix import ProbeMatrix, node_probes, probe_matrices
from kubefence.dataplane.netns._probe import ProbeResult, run_probes
from kubefence.dataplane.netns._server import ServedPod, read_spec
from kubefence.dataplane.netns._slots import (
    PodSlot,
    check_name,
    node_netns,
    plan_slots,
    sandbox_inventory,
)
from kubefence.dataplane.netns._state import (
    RUN_DIR,
    SandboxState,
    load_state,
    require_state,
    sandbox_lock,
    save_state,
    state_dir,
    state_readable,
    status,
    store_manifests,
)
from kubefence.dataplane.netns._system import check_environment, process_alive, terminate
from kubefence.dataplane.netns._topology import (
    DownReport,
    add_pods,
    create_namespaces,
    delete_namespaces,
    down,
    remove_links,
    served,
    setup_node,
    start_forwarding,
    start_server,
)
from kubefence.errors import InputError
from kubefence.semantics import DEFAULT_SETTINGS, Settings

if TYPE_CHECKING:
    from kubefence.dataplane.nft import FlowLog

__all__ = [
    "HOST_NETWORK_REASON",
    "ApplyReport",
    "Sandbox",
    "Verdict",
    "reference_verdict",
]

HOST_NETWORK_REASON = "hostNetwork pod: it shares its node's address and does not run here"


@dataclass(frozen=True, slots=True)
class ApplyReport:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    cut: tuple[Flow, ...]  # established connections deleted because they are now denied (S25)
    server_restarted: bool
    ruleset: RulesetChange = "full"  # whole table, only what differed, or nothing to do


class Sandbox:
    """A running sandbox: its recorded state and the inventory it enforces."""

    def __init__(
        self,
        state: SandboxState,
        inventory: Inventory,
        *,
        settings: Settings = DEFAULT_SETTINGS,
        run_dir: Path = RUN_DIR,
    ) -> None:
        self.state = state
        self.inventory = sandbox_inventory(inventory, state.pods, node=state.node_netns)
        self.settings = settings
        self.run_dir = run_dir
        self._renderer = default_renderer()
        self._ruleset = InstalledRuleset()  # what this object installed last
        # The inventory the last conntrack check of this object judged every flow against.
        self._checked: Inventory | None = None

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def flow_log(self) -> FlowLog | None:
        """The flow log its ruleset carries (recorded by ``up``), None when it has none."""
        from kubefence.dataplane.nft import FlowLog

        recorded = self.state.flow_log
        return None if recorded is None else FlowLog(**recorded)

    @property
    def directory(self) -> Path:
        return state_dir(self.name, run_dir=self.run_dir)

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        inventory: Inventory,
        *,
        name: str = "default",
        settings: Settings = DEFAULT_SETTINGS,
        renderer: RulesetRenderer | None = None,
        manifests: Sequence[tuple[str, bytes]] = (),
        default_namespace: str = "default",
        run_dir: Path = RUN_DIR,
        flow_log: FlowLog | None = None,
    ) -> Sandbox:
        """Create the sandbox; leftovers of a crashed sandbox of the same name are removed.
        With ``flow_log`` its ruleset (now and after every ``apply``) logs each new connection's
        verdict for ``kubefence flows`` (``FlowReader``)."""
        check_name(name)
        check_environment()
        with sandbox_lock(name, run_dir=run_dir):
            return cls._up_locked(
                inventory,
                name=name,
                settings=settings,
                renderer=renderer,
                manifests=manifests,
                default_namespace=default_namespace,
                run_dir=run_dir,
                flow_log=flow_log,
            )

    @classmethod
    def _up_locked(
        cls,
        inventory: Inventory,
        *,
        name: str,
        settings: Settings,
        renderer: RulesetRenderer | None,
        manifests: Sequence[tuple[str, bytes]],
        default_namespace: str,
        run_dir: Path,
        flow_log: FlowLog | None,
    ) -> Sandbox:
        existing = load_state(name, run_dir=run_dir) if state_readable(name, run_dir) else None
        if existing is not None and status(name, run_dir=run_dir).healthy:
            raise InputError(
                f"sandbox {name!r} is already up; use 'kubefence sandbox apply' or "
                f"'kubefence sandbox down --name {name}' first"
            )
        down(name, run_dir=run_dir)
        slots = plan_slots(name, inventory.pods)
        node = node_netns(name)
        state = SandboxState(
            name=name,
            node_netns=node,
            namespaces=(node, *(s.netns for s in slots.values())),
            pods=slots,
            default_namespace=default_namespace,
            unprobed={p.key: HOST_NETWORK_REASON for p in inventory.pods if p.host_network},
            settings=dataclasses.asdict(settings),
            flow_log=None if flow_log is None else dataclasses.asdict(flow_log),
        )
        save_state(state, run_dir=run_dir)
        sandbox = cls(state, inventory, settings=settings, run_dir=run_dir)
        try:
            sandbox._store_manifests(manifests)
            create_namespaces(state.namespaces)
            setup_node(node)
            sandbox._install_ruleset(renderer or sandbox._renderer)  # before any link exists
            sandbox._checked = sandbox.inventory  # every flow to come is admitted by it
            add_pods(list(slots.values()), node=node)
            start_forwarding(node)
            sandbox._start_server()
            sandbox._save(phase="ready")
        except BaseException:
            down(name, run_dir=run_dir)
            raise
        return sandbox

    @classmethod
    def attach(
        cls,
        name: str,
        inventory: Inventory,
        *,
        settings: Settings | None = None,
        run_dir: Path = RUN_DIR,
    ) -> Sandbox:
        """The running sandbox ``name``, enforcing ``inventory`` (as read from its manifests),
        with the settings it was brought up with unless ``settings`` is given."""
        state = require_state(name, run_dir=run_dir)
        if settings is None:
            known = {f.name for f in dataclasses.fields(Settings)}
            settings = Settings(**{k: v for k, v in state.settings.items() if k in known})
        return cls(state, inventory, settings=settings, run_dir=run_dir)

    def apply(
        self,
        inventory: Inventory,
        *,
        renderer: RulesetRenderer | None = None,
        verdict: Verdict | None = None,
        manifests: Sequence[tuple[str, bytes]] | None = None,
        whole_table: bool = False,
    ) -> ApplyReport:
        """Move the sandbox to ``inventory``: one atomic ruleset swap, then topology changes.

        The swap replaces only what differs from the ruleset this object installed last
        (``ApplyReport.ruleset``), or with ``whole_table`` the whole table: the way to repair
        a table changed behind kubefence's back (an unchanged ruleset is not sent again).

        With ``settings.cut_established_on_deny`` (S25, the default) every tracked connection
        that the new policies deny is deleted from conntrack right after the swap, so its next
        packet is evaluated as a new connection and dropped.
        """
        strict = self.settings.cut_established_on_deny
        check_environment(tools=("ip", "nft", "conntrack") if strict else ("ip", "nft"))
        with sandbox_lock(self.name, run_dir=self.run_dir):
            return self._apply_locked(
                inventory,
                renderer=renderer,
                verdict=verdict,
                manifests=manifests,
                whole_table=whole_table,
            )

    def _apply_locked(
        self,
        inventory: Inventory,
        *,
        renderer: RulesetRenderer | None,
        verdict: Verdict | None,
        manifests: Sequence[tuple[str, bytes]] | None,
        whole_table: bool,
    ) -> ApplyReport:
        strict = self.settings.cut_established_on_deny
        renderer = renderer or self._renderer
        old_slots = dict(self.state.pods)
        slots = plan_slots(self.name, inventory.pods, previous=old_slots)
        added = [s for k, s in slots.items() if k not in old_slots]
        removed = [s for k, s in old_slots.items() if k not in slots]
        old_served = self._served_now()
        self.state = self.state.with_changes(
            phase="applying",
            namespaces=tuple(dict.fromkeys((*self.state.namespaces, *(s.netns for s in added)))),
            pods=dict(sorted({**old_slots, **slots}.items())),
        )
        if added:  # record namespaces before they exist, so a crash leaves nothing unknown
            self._save()
        self.inventory = sandbox_inventory(inventory, slots, node=self.state.node_netns)
        how = self._install_ruleset(renderer, whole=whole_table)
        cut: list[Flow] = []
        if strict and how != "unchanged":  # unchanged: what it denies was cut when installed
            scope = None
            if verdict is None and self._checked is not None and self._ruleset.sole_writer:
                scope = PolicyChanges.of(self._checked, self.inventory)
            cut = cut_denied(
                self.inventory,
                verdict or reference_verdict(self.settings),
                node=self.state.node_netns,
                scope=scope,
            )
            self._checked = self.inventory
        if manifests is not None:
            self._store_manifests(manifests)
        if removed:  # deleting the node side removes the pair and its routes at once
            remove_links(removed, node=self.state.node_netns)
        add_pods(added, node=self.state.node_netns)  # may reuse a removed pod's address
        new_served = served(self.inventory, slots)
        restart = new_served != old_served or not self._server_alive()
        if restart:
            self._stop_server()
        delete_namespaces([s.netns for s in removed])
        gone = {s.netns for s in removed}
        self.state = self.state.with_changes(
            pods=slots,
            namespaces=tuple(n for n in self.state.namespaces if n not in gone),
            unprobed={p.key: HOST_NETWORK_REASON for p in inventory.pods if p.host_network},
        )
        if restart:
            self._start_server()
        self._save(phase="ready")
        return ApplyReport(
            added=tuple(s.key for s in added),
            removed=tuple(s.key for s in removed),
            cut=tuple(cut),
            server_restarted=restart,
            ruleset=how,
        )

    def down(self) -> DownReport:
        return down(self.name, run_dir=self.run_dir)

    # --- questions ------------------------------------------------------------------------

    def probe(
        self,
        *,
        port: int | str,
        protocol: Protocol = Protocol.TCP,
        timeout: float = 1.0,
        family: int = 4,
    ) -> ProbeMatrix:
        """Probe every ordered pair of pods on one port (a number or a name resolved per
        destination, like ``matrix``)."""
        return self.probe_many([(port, protocol)], timeout=timeout, family=family)[0]

    def probe_many(
        self,
        specs: Sequence[tuple[int | str, Protocol]],
        *,
        timeout: float = 1.0,
        family: int = 4,
        pairs: Sequence[tuple[str, str]] | None = None,
    ) -> list[ProbeMatrix]:
        """Probe several (port, protocol) at once: one timeout for all of them together."""
        return probe_matrices(
            self.state, self.inventory, specs, timeout=timeout, family=family, pairs=pairs
        )

    def confirm(self, results: Sequence[ProbeResult], *, timeout: float = 3.0) -> list[ProbeResult]:
        """Probe the same targets again with a longer timeout: on a loaded machine a short
        timeout can mistake a slow answer for a drop; a real drop stays a drop."""
        return run_probes([r.target for r in results], timeout=timeout)

    @property
    def node_endpoint(self) -> str:
        """How ``decide`` names the sandbox's node (``node:kf-<name>-node``)."""
        return f"node:{self.state.node_netns}"

    def probe_from_node(
        self,
        *,
        port: int,
        protocol: Protocol = Protocol.TCP,
        timeout: float = 1.0,
        family: int = 4,
    ) -> dict[str, ProbeResult]:
        """Probe every running pod from the node namespace itself (kubelet-like traffic, S24)."""
        return node_probes(
            self.state,
            self.inventory,
            source=self.node_endpoint,
            port=port,
            protocol=protocol,
            timeout=timeout,
            family=family,
        )

    def slot(self, key: str) -> PodSlot:
        slot = self.state.pods.get(key)
        if slot is None:
            reason = self.state.unprobed.get(key, "no such pod in this sandbox")
            raise InputError(f"pod {key}: {reason}")
        return slot

    # --- internals ------------------------------------------------------------------------

    def _save(self, *, phase: str | None = None) -> None:
        if phase is not None:
            self.state = self.state.with_changes(phase=phase)
        save_state(self.state, run_dir=self.run_dir)

    def _store_manifests(self, manifests: Sequence[tuple[str, bytes]]) -> None:
        self.state = self.state.with_changes(manifests=store_manifests(self.directory, manifests))
        self._save()

    def _install_ruleset(self, renderer: RulesetRenderer, *, whole: bool = False) -> RulesetChange:
        """Render and install the ruleset (see ``InstalledRuleset.install``)."""
        addresses = {key: slot.addresses for key, slot in self.state.pods.items()}
        addresses = {k: v for k, v in addresses.items() if k in self.inventory.pod_by_key}
        return self._ruleset.install(
            renderer,
            self.inventory,
            addresses=addresses,
            settings=self.settings,
            node=self.state.node_netns,
            path=self.directory / "ruleset.nft",
            whole=whole,
            flow_log=self.flow_log,
        )

    def _served_now(self) -> list[ServedPod] | None:
        """What the running server was started to serve (its spec file), so that ``apply``
        needs no inventory of the state it replaces (``kubefence sandbox apply`` then parses
        only the new manifests); None when unknown or there is no server (it is started)."""
        if self.state.server is None:
            return None
        try:
            return read_spec(str(self.directory / "server.json"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _server_alive(self) -> bool:
        server = self.state.server
        return server is not None and process_alive(server.pid, server.start_time)

    def _stop_server(self) -> None:
        server = self.state.server
        if server is not None:
            terminate(server.pid, server.start_time)
        self.state = self.state.with_changes(server=None)
        self._save()

    def _start_server(self) -> None:
        record = start_server(self.directory, served(self.inventory, self.state.pods))
        self.state = self.state.with_changes(server=record)
        self._save()
