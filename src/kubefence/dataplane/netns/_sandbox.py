"""The sandbox cluster: a node namespace, one namespace per pod, nftables, a server, probes.

Why this module exists: it turns an ``Inventory`` into running network namespaces whose traffic
is filtered by the rendered nftables ruleset, keeps them in step with ``apply``, and answers
"what do real packets do?". It talks to the policy side through one narrow seam: the ruleset
renderer (``render_ruleset``), a verdict function (the reference evaluator, for strict-mode
conntrack cuts) and the ``Inventory`` itself.

Topology (routed, no bridge; see ``_plan`` for addresses)::

    kf-<name>-<i>                 kf-<name>-node                       kf-<name>-<j>
    eth0 198.18.0.2/32 ---veth--- kfp<i>   [inet kubefence forward]   kfp<j> ---veth--- eth0
    default via 169.254.1.1       169.254.1.1/32 on lo, fe80::1 on each kfp, /32 + /128 routes

Order in ``up``: namespaces, then the ruleset, then links and routes, then forwarding, so that
no packet is ever forwarded before the policies are in place. State is saved before each
resource is made, so ``down`` (and ``up`` after a crash) can remove everything.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from typing import Protocol as TypingProtocol

from kubefence.api import Inventory, IPAddress, Pod, Protocol
from kubefence.dataplane.netns._conntrack import Flow, delete_argv, parse_conntrack
from kubefence.dataplane.netns._plan import (
    GATEWAY_V4,
    GATEWAY_V6,
    NODE_V4,
    NODE_V6,
    PodSlot,
    check_name,
    node_netns,
    owned_netns_pattern,
    plan_slots,
)
from kubefence.dataplane.netns._probe import ProbeResult, ProbeTarget, run_probes
from kubefence.dataplane.netns._rtnl import configure_pod
from kubefence.dataplane.netns._server import ServedPod, is_nginx_image, server_spec
from kubefence.dataplane.netns._state import (
    RUN_DIR,
    SandboxState,
    ServerRecord,
    load_state,
    release_lock_file,
    sandbox_lock,
    save_state,
    state_dir,
)
from kubefence.dataplane.netns._system import (
    check_environment,
    entered,
    process_alive,
    process_start_time,
    read_sysctl,
    run,
    terminate,
    write_sysctl,
)
from kubefence.errors import DataplaneError, EnvironmentProblem, InputError
from kubefence.semantics import DEFAULT_SETTINGS, Settings, resolve_named_port

__all__ = [
    "HOST_NETWORK_REASON",
    "ApplyReport",
    "DownReport",
    "ProbeMatrix",
    "RulesetRenderer",
    "Sandbox",
    "SandboxStatus",
    "Verdict",
    "down",
    "list_sandboxes",
    "manifest_paths",
    "require_state",
    "sandbox_inventory",
    "status",
]

HOST_NETWORK_REASON = "hostNetwork pod: it shares its node's address and does not run here"


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


def sandbox_inventory(
    inventory: Inventory, slots: Mapping[str, PodSlot], *, node: str | None = None
) -> Inventory:
    """The inventory as the sandbox runs it: each running pod carries the addresses it was
    given and, with ``node``, that node's name: every sandbox pod lives behind the one node
    namespace, which is therefore "the pod's own node" of S24."""
    pods = []
    for pod in inventory.pods:
        slot = slots.get(pod.key)
        if slot is None:
            pods.append(pod)  # a hostNetwork pod: not run, keeps its manifest node and IPs
        elif node is None:
            pods.append(dataclasses.replace(pod, ips=slot.addresses))
        else:
            pods.append(dataclasses.replace(pod, ips=slot.addresses, node=node))
    return dataclasses.replace(inventory, pods=tuple(pods))


@dataclass(frozen=True, slots=True)
class ApplyReport:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    cut: tuple[Flow, ...]  # established connections deleted because they are now denied (S25)
    server_restarted: bool
    ruleset: RulesetChange = "full"  # whole table, only what differed, or nothing to do


@dataclass(frozen=True, slots=True)
class DownReport:
    namespaces: tuple[str, ...]
    server_stopped: bool
    state_removed: bool


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    name: str
    phase: str
    pods: tuple[PodSlot, ...]
    missing_namespaces: tuple[str, ...]
    server: ServerRecord | None
    server_alive: bool
    unprobed: Mapping[str, str]

    @property
    def healthy(self) -> bool:
        return self.phase == "ready" and not self.missing_namespaces and self.server_alive


@dataclass(frozen=True, slots=True)
class ProbeMatrix:
    """Real-packet reachability for one (port, protocol), as docs/matrix-json.md shapes it."""

    port: str
    protocol: Protocol
    endpoints: tuple[str, ...]
    results: Mapping[tuple[str, str], ProbeResult]  # every probed pair
    unprobed: Mapping[tuple[str, str], str]  # every pair that could not be probed, and why

    def cell(self, src: str, dst: str) -> str:
        result = self.results.get((src, dst))
        if result is None or result.reachable is None:
            return "?"
        return "1" if result.reachable else "0"

    def to_json(self) -> dict[str, Any]:
        unprobed = dict(self.unprobed)
        for pair, result in self.results.items():
            if result.reachable is None:
                unprobed[pair] = result.detail
        return {
            "port": self.port,
            "protocol": self.protocol.value,
            "endpoints": list(self.endpoints),
            "rows": ["".join(self.cell(s, d) for d in self.endpoints) for s in self.endpoints],
            "unprobed": [
                {"from": s, "to": d, "reason": reason}
                for (s, d), reason in sorted(unprobed.items())
            ],
        }


def _netns_list() -> list[str]:
    done = run(["ip", "netns", "list"])
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def _ip_batch(commands: Sequence[str], *, netns: str | None = None) -> None:
    if not commands:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-b", "-"]
    run(argv, stdin="\n".join(commands) + "\n")


def _node_links(slots: Sequence[PodSlot]) -> list[str]:
    commands = []
    for slot in slots:
        commands += [
            f"link add {slot.node_if} type veth peer name eth0 netns {slot.netns}",
            f"addr add {GATEWAY_V6}/64 dev {slot.node_if} nodad",
            f"link set {slot.node_if} up",
            f"route add {slot.ipv4}/32 dev {slot.node_if}",
            f"route add {slot.ipv6}/128 dev {slot.node_if}",
        ]
    return commands


_POD_SYSCTLS = {
    # ICMP port-unreachable is how a UDP probe learns that it reached the pod: never rate-limit.
    "net.ipv4.icmp_ratelimit": "0",
    "net.ipv6.icmp.ratelimit": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.all.accept_dad": "0",
}


def _served(inventory: Inventory, slots: Mapping[str, PodSlot]) -> list[ServedPod]:
    served = []
    for pod in inventory.pods:
        slot = slots.get(pod.key)
        if slot is None:
            continue
        served.append(
            ServedPod(
                key=pod.key,
                netns=slot.netns,
                tcp=tuple(sorted({p.port for p in pod.ports if p.protocol is Protocol.TCP})),
                udp=tuple(sorted({p.port for p in pod.ports if p.protocol is Protocol.UDP})),
                nginx=any(is_nginx_image(image) for image in pod.images),
            )
        )
    return served


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
        self._installed: str | None = None  # the ruleset text this object installed last
        self._sole_writer = False  # nobody else installed a ruleset since this object did
        # The inventory the last conntrack check of this object judged every flow against.
        self._checked: Inventory | None = None

    @property
    def name(self) -> str:
        return self.state.name

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
    ) -> Sandbox:
        """Create the sandbox; leftovers of a crashed sandbox of the same name are removed."""
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
    ) -> Sandbox:
        existing = load_state(name, run_dir=run_dir) if _state_readable(name, run_dir) else None
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
        )
        save_state(state, run_dir=run_dir)
        sandbox = cls(state, inventory, settings=settings, run_dir=run_dir)
        try:
            sandbox._store_manifests(manifests)
            _ip_batch([f"netns add {n}" for n in state.namespaces])
            _ip_batch(
                [
                    "link set lo up",
                    f"addr add {GATEWAY_V4}/32 dev lo",
                    f"addr add {NODE_V4}/32 dev lo",
                    f"addr add {NODE_V6}/128 dev lo",
                ],
                netns=node,
            )
            sandbox._install_ruleset(renderer or sandbox._renderer)  # before any link exists
            sandbox._checked = sandbox.inventory  # every flow to come is admitted by it
            sandbox._add_pods(list(slots.values()))
            write_sysctl(node, {"net.ipv4.conf.all.rp_filter": "0"}, required=False)
            write_sysctl(node, {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"})
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
        old_served = _served(self.inventory, old_slots)
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
            if verdict is None and self._checked is not None and self._sole_writer:
                scope = _PolicyChanges.of(self._checked, self.inventory)
            cut = self._cut_denied(verdict or reference_verdict(self.settings), scope=scope)
            self._checked = self.inventory
        if manifests is not None:
            self._store_manifests(manifests)
        if removed:  # deleting the node side removes the pair and its routes at once
            _ip_batch([f"link del {s.node_if}" for s in removed], netns=self.state.node_netns)
        self._add_pods(added)  # may reuse a removed pod's address: its routes are gone
        new_served = _served(self.inventory, slots)
        restart = new_served != old_served or not self._server_alive()
        if restart:
            self._stop_server()
        if removed:
            run(
                ["ip", "-force", "-b", "-"],
                stdin="".join(f"netns del {s.netns}\n" for s in removed),
            )
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
        endpoints = tuple(p.key for p in self.inventory.pods)
        wanted = pairs if pairs is not None else [(s, d) for s in endpoints for d in endpoints]
        targets: list[ProbeTarget] = []
        owners: list[int] = []
        unprobed: list[dict[tuple[str, str], str]] = [{} for _ in specs]
        for number, (port, protocol) in enumerate(specs):
            for src, dst in wanted:
                reason = self._unprobed_reason(src, dst)
                resolved = port if isinstance(port, int) else self._resolve(dst, port, protocol)
                if reason is None and resolved is None:
                    reason = f"{dst} declares no {protocol.value} port named {port!r}"
                if reason is not None or resolved is None:
                    unprobed[number][(src, dst)] = reason or "unresolved port"
                    continue
                slot_src, slot_dst = self.state.pods[src], self.state.pods[dst]
                targets.append(
                    ProbeTarget(
                        src=src,
                        dst=dst,
                        netns=slot_src.netns,
                        address=slot_dst.ipv4 if family == 4 else slot_dst.ipv6,
                        port=resolved,
                        protocol=protocol,
                        dst_netns=slot_dst.netns,
                    )
                )
                owners.append(number)
        results = run_probes(targets, timeout=timeout)
        per_spec: list[dict[tuple[str, str], ProbeResult]] = [{} for _ in specs]
        for number, result in zip(owners, results, strict=True):
            per_spec[number][(result.target.src, result.target.dst)] = result
        return [
            ProbeMatrix(
                port=str(port),
                protocol=protocol,
                endpoints=endpoints,
                results=per_spec[number],
                unprobed=unprobed[number],
            )
            for number, (port, protocol) in enumerate(specs)
        ]

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
        node = self.state.node_netns
        targets = [
            ProbeTarget(
                src=self.node_endpoint,
                dst=slot.key,
                netns=node,
                address=slot.ipv4 if family == 4 else slot.ipv6,
                port=port,
                protocol=protocol,
                dst_netns=slot.netns,
            )
            for slot in self.state.pods.values()
            if slot.key in self.inventory.pod_by_key
        ]
        return {r.target.dst: r for r in run_probes(targets, timeout=timeout)}

    def slot(self, key: str) -> PodSlot:
        slot = self.state.pods.get(key)
        if slot is None:
            reason = self.state.unprobed.get(key, "no such pod in this sandbox")
            raise InputError(f"pod {key}: {reason}")
        return slot

    # --- internals ------------------------------------------------------------------------

    def _unprobed_reason(self, src: str, dst: str) -> str | None:
        for key in (src, dst):
            if key not in self.state.pods:
                return f"{key}: {self.state.unprobed.get(key, 'not running in the sandbox')}"
        return None

    def _resolve(self, dst: str, name: str, protocol: Protocol) -> int | None:
        pod: Pod = self.inventory.pod_by_key[dst]
        return resolve_named_port(name, protocol, pod.ports)

    def _save(self, *, phase: str | None = None) -> None:
        if phase is not None:
            self.state = self.state.with_changes(phase=phase)
        save_state(self.state, run_dir=self.run_dir)

    def _store_manifests(self, manifests: Sequence[tuple[str, bytes]]) -> None:
        directory = self.directory / "manifests"
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        stored = []
        for number, (label, content) in enumerate(manifests):
            stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(label).name)
            relative = f"manifests/{number:03d}-{stem or 'stdin'}"
            if not relative.endswith((".yaml", ".yml", ".json")):
                relative += ".yaml"
            (self.directory / relative).write_bytes(content)
            stored.append(relative)
        self.state = self.state.with_changes(manifests=tuple(stored))
        self._save()

    def _install_ruleset(self, renderer: RulesetRenderer, *, whole: bool = False) -> RulesetChange:
        """Render and install the ruleset; returns how: "full" (the whole table replaced),
        "update" (only what differs from the text this object installed last, see
        ``ruleset_update``) or "unchanged". Either way one atomic ``nft`` transaction.

        An update is only tried while ``ruleset.nft`` still holds that text (no other process
        installed one since); if ``nft`` refuses it, the whole table is installed instead.
        """
        from kubefence.dataplane.nft import ruleset_update

        addresses = {key: slot.addresses for key, slot in self.state.pods.items()}
        addresses = {k: v for k, v in addresses.items() if k in self.inventory.pod_by_key}
        text = renderer(
            self.inventory,
            addresses=addresses,
            settings=self.settings,
            node_addresses=(NODE_V4, NODE_V6),
        )
        path = self.directory / "ruleset.nft"
        installed, self._installed = self._installed, None
        self._sole_writer = installed is not None and _read_text(path) == installed
        update = None
        if not whole and self._sole_writer and installed is not None:
            update = ruleset_update(installed, text)
        how: RulesetChange = "full"
        if update == "":
            how = "unchanged"
        elif update is not None:
            done = run(["nft", "-f", "-"], stdin=update, netns=self.state.node_netns, check=False)
            how = "update" if done.returncode == 0 else "full"
        # Written before a whole install, so that nft's complaint points into a file; a text
        # nft refused is never ``self._installed``, so no update is ever computed from it.
        path.write_text(text)
        if how == "full":
            run(["nft", "-f", "-"], stdin=text, netns=self.state.node_netns)
        self._installed = text
        return how

    def _add_pods(self, slots: Sequence[PodSlot]) -> None:
        if not slots:
            return
        missing = [s.netns for s in slots if not Path("/run/netns", s.netns).exists()]
        _ip_batch([f"netns add {n}" for n in missing])
        for slot in slots:
            write_sysctl(slot.netns, _POD_SYSCTLS, required=False)
        _ip_batch(_node_links(slots), netns=self.state.node_netns)
        for slot in slots:  # in-process rtnetlink: no process per pod
            try:
                with entered(slot.netns):
                    configure_pod(
                        ipv4=slot.ipv4, ipv6=slot.ipv6, gateway_v4=GATEWAY_V4, gateway_v6=GATEWAY_V6
                    )
            except (OSError, DataplaneError) as exc:
                raise DataplaneError(
                    f"configuring {slot.key} in {slot.netns} failed: {exc}"
                ) from exc

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
        spec = self.directory / "server.json"
        spec.write_text(json.dumps(server_spec(_served(self.inventory, self.state.pods))))
        done = run(
            [
                sys.executable,
                "-m",
                "kubefence.dataplane.netns._server",
                str(spec),
                str(self.directory / "server.log"),
            ],
            check=False,
        )
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            if "Too many open files" in message:
                message += " (raise the open-file limit: ulimit -n, one socket per pod port)"
            raise EnvironmentProblem(f"the sandbox server did not start: {message}")
        words = done.stdout.split()
        if len(words) < 2 or words[0] != "ready":
            raise DataplaneError(f"the sandbox server did not start: {done.stdout.strip()}")
        pid = int(words[1])
        self.state = self.state.with_changes(
            server=ServerRecord(pid=pid, start_time=process_start_time(pid))
        )
        self._save()

    def _cut_denied(self, verdict: Verdict, *, scope: _PolicyChanges | None = None) -> list[Flow]:
        """Delete the tracked flows the new policies deny (S25), asking ``verdict`` once per
        (protocol, source, destination, port) about the addresses the packets carry, so an
        ipBlock is judged on the family actually used.

        With ``scope`` (which namespaces' policies changed since the last check) only flows
        from or to a pod of a changed namespace are judged: every other flow was
        allowed at the last check or admitted since by the same table, and its verdict
        depends on nothing that changed.
        """
        node = self.state.node_netns
        if read_sysctl(node, "net.netfilter.nf_conntrack_count") == "0":
            return []  # nothing tracked: no process to start
        listing = run(["conntrack", "-L"], check=False, netns=node)
        owners: dict[IPAddress, set[str]] = {}
        if scope is not None:
            for pod in self.inventory.pods:
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
                allowed = verdict(
                    self.inventory, str(flow.src), str(flow.dst), flow.dport, flow.protocol
                )
                verdicts[key] = allowed
                if not allowed:  # one delete per (protocol, src, dst, dport), any source port
                    run(delete_argv(flow, any_source_port=True), check=False, netns=node)
            if not verdicts[key]:
                cut.append(flow)
        return cut


# --- module-level operations (work without a healthy sandbox) -------------------------------


class _PolicyChanges:
    """Which namespaces' policies differ between two inventories, compared only for the
    namespaces asked about (comparing every policy of a large inventory costs more than the
    few verdicts it would save). ``None`` from ``of``: pods or namespaces differ as well."""

    __slots__ = ("_after", "_before", "_known")

    def __init__(self, before: Inventory, after: Inventory) -> None:
        self._before = before.policies_by_namespace
        self._after = after.policies_by_namespace
        self._known: dict[str, bool] = {}

    @classmethod
    def of(cls, before: Inventory, after: Inventory) -> _PolicyChanges | None:
        if before.pods != after.pods or before.namespaces != after.namespaces:
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


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _state_readable(name: str, run_dir: Path) -> bool:
    try:
        load_state(name, run_dir=run_dir)
    except DataplaneError:
        return False
    return True


def manifest_paths(state: SandboxState, *, run_dir: Path = RUN_DIR) -> list[str]:
    """The stored copies of the manifests the sandbox enforces, to load them again."""
    directory = state_dir(state.name, run_dir=run_dir)
    return [str(directory / m) for m in state.manifests]


def require_state(name: str, *, run_dir: Path = RUN_DIR) -> SandboxState:
    check_name(name)
    state = load_state(name, run_dir=run_dir)
    if state is None:
        raise InputError(f"no sandbox named {name!r} is up (start one with 'kubefence sandbox up')")
    return state


def status(name: str, *, run_dir: Path = RUN_DIR) -> SandboxStatus:
    state = require_state(name, run_dir=run_dir)
    present = set(_netns_list())
    server = state.server
    return SandboxStatus(
        name=state.name,
        phase=state.phase,
        pods=tuple(state.pods.values()),
        missing_namespaces=tuple(n for n in state.namespaces if n not in present),
        server=server,
        server_alive=server is not None and process_alive(server.pid, server.start_time),
        unprobed=state.unprobed,
    )


def list_sandboxes(*, run_dir: Path = RUN_DIR) -> list[str]:
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if (p / "state.json").is_file())


def down(name: str, *, run_dir: Path = RUN_DIR) -> DownReport:
    """Remove everything sandbox ``name`` made: its server, namespaces (and with them links and
    the nft table) and state directory. Works from a partial or missing state file."""
    check_name(name)
    check_environment(tools=("ip",))
    with sandbox_lock(name, run_dir=run_dir) as outermost:
        report = _down_locked(name, run_dir=run_dir)
        if outermost:
            release_lock_file(name, run_dir=run_dir)
    return report


def _down_locked(name: str, *, run_dir: Path) -> DownReport:
    try:
        state = load_state(name, run_dir=run_dir)
    except DataplaneError:
        state = None  # unreadable: fall back to the naming pattern
    stopped = False
    if state is not None and state.server is not None:
        stopped = process_alive(state.server.pid, state.server.start_time)
        terminate(state.server.pid, state.server.start_time)
    pattern = owned_netns_pattern(name)
    recorded = set(state.namespaces) if state is not None else set()
    present = set(_netns_list())
    doomed = sorted(n for n in present if n in recorded or pattern.match(n))
    if doomed:
        run(["ip", "-force", "-b", "-"], stdin="".join(f"netns del {n}\n" for n in doomed))
    directory = state_dir(name, run_dir=run_dir)
    removed = directory.exists()
    if removed:
        shutil.rmtree(directory, ignore_errors=True)
    return DownReport(namespaces=tuple(doomed), server_stopped=stopped, state_removed=removed)
