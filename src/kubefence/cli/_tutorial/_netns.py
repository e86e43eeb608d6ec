"""Real packets for the walk-through: the kubefence sandbox and the machine's own ``curl``.

Why this module exists: it is the one data plane of ``kubefence tutorial`` (the ``Observer``
the command picks as root). It starts no process itself: the sandbox comes from
``kubefence.dataplane.netns`` and so does ``run_in_pod``, which runs curl inside the source
pod's network namespace; this module chooses what to run and reads the result as a user would.
The sandbox carries a flow log, read while the checks run, so a timed-out curl is shown with
the line ``kubefence flows`` prints for it: which policy dropped it.
"""

from __future__ import annotations

import shutil
import signal
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from kubefence.api import Inventory
from kubefence.cli._tutorial._results import Observation
from kubefence.cli._tutorial._script import Check
from kubefence.dataplane.netns import (
    FlowEvent,
    FlowReader,
    RulesetRenderer,
    Sandbox,
    check_environment,
    check_name,
    down,
    run_in_pod,
)
from kubefence.dataplane.nft import FlowLog
from kubefence.errors import DataplaneError, EnvironmentProblem, InputError
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = ["NetnsObserver", "curl_observation", "enforcement_unavailable"]


def enforcement_unavailable() -> str | None:
    """Why real packets cannot be used here (not root, a tool missing), or None."""
    try:
        check_environment(tools=("ip", "nft", "conntrack"))
    except EnvironmentProblem as exc:
        return str(exc)
    if shutil.which("curl") is None:
        return "the tutorial needs the 'curl' command; install with: apt-get install curl"
    return None


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the body is done, then raise ``KeyboardInterrupt`` if one came.

    Only the main thread may install handlers; elsewhere the body runs unprotected."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def _hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, _hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


_CURL_EXIT_TIMEOUT = 28  # "Operation timed out": the SYN went unanswered (dropped by policy)
_CURL_EXIT_REFUSED = 7  # "Failed to connect": a RST came back, so the packet reached the pod
_PAGE_LINES = 4  # lines of the nginx welcome page shown for a connection that got through


def curl_observation(shown: str, returncode: int, *, stdout: str, stderr: str) -> Observation:
    """What a curl run means: the page (allowed), a timeout (denied), or neither (None)."""
    if returncode == 0:
        lines = stdout.splitlines()
        more = ("…",) if len(lines) > _PAGE_LINES else ()
        return Observation(True, shown, (*lines[:_PAGE_LINES], *more))
    errors = tuple(stderr.strip().splitlines()) or (f"curl exited with status {returncode}",)
    if returncode == _CURL_EXIT_TIMEOUT:
        return Observation(False, shown, errors)
    if returncode == _CURL_EXIT_REFUSED:
        return Observation(True, shown, (*errors, "(refused by the pod itself: it was reached)"))
    return Observation(None, shown, errors)


_FLOW_WAIT = 0.3  # seconds to wait for the flow log's records after the checks


def _flow_reader(sandbox: Sandbox) -> FlowReader | None:
    """The sandbox's flow log, bound; None when there is none or someone else reads it (then
    the tutorial runs as before, without flow lines)."""
    flow_log = sandbox.flow_log
    if flow_log is None:
        return None
    try:
        return FlowReader(sandbox.state.node_netns, group=flow_log.group).open()
    except (DataplaneError, OSError):
        return None


def _with_flow_line(
    observation: Observation,
    check: Check,
    sandbox: Sandbox,
    inventory: Inventory,
    events: Sequence[FlowEvent],
) -> Observation:
    """A timed-out curl with the ``kubefence flows`` line of its dropped connection added."""
    if observation.allowed is not False:
        return observation
    from kubefence.cli._flows import FlowExplainer, render_line

    source, destination = sandbox.slot(check.src), sandbox.slot(check.dst)
    for event in events:
        if (
            not event.allowed
            and event.source in source.addresses
            and event.destination in destination.addresses
            and event.destination_port == check.port
        ):
            names = {
                str(a): key for key, slot in sandbox.state.pods.items() for a in slot.addresses
            }
            explainer = FlowExplainer(inventory, settings=sandbox.settings, names=names)
            line = f"kubefence flows: {render_line(explainer.record(event))}"
            return Observation(observation.allowed, observation.command, (*observation.lines, line))
    return observation


class NetnsObserver:
    """Real packets: the kubefence sandbox (network namespaces filtered by nftables) and the
    machine's own ``curl`` run inside the source pod's namespace.

    HTTP checks run ``curl -sS -m 1 http://POD-IP/`` and show what curl prints; the DNS check
    sends a UDP datagram to the kube-dns stand-in on port 53 with the sandbox's prober (the
    stand-in echoes, it does not resolve) and shows it in nslookup's words."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings = DEFAULT_SETTINGS,
        timeout: float = 1.0,
        renderer: RulesetRenderer | None = None,
    ) -> None:
        self.name = check_name(name)
        self.settings = settings
        self.timeout = timeout
        self.renderer = renderer  # None: kubefence's nftables compiler (tests may swap it)
        self.description = (
            f"sandbox {name!r} (network namespaces kf-{name}-*, nftables), the machine's curl"
        )
        self._sandbox: Sandbox | None = None

    def sync(self, inventory: Inventory, *, files: Sequence[Path]) -> None:
        manifests = [(path.name, path.read_bytes()) for path in files]
        # An interrupt in the middle of up/apply could strike between starting the sandbox's
        # server and recording its pid, leaving a process ``down`` cannot find: let the change
        # finish (a second or two), then interrupt.
        with _interrupts_deferred():
            if self._sandbox is None:
                self._sandbox = Sandbox.up(
                    inventory,
                    name=self.name,
                    settings=self.settings,
                    manifests=manifests,
                    renderer=self.renderer,
                    flow_log=FlowLog(),
                )
            else:
                self._sandbox.apply(inventory, manifests=manifests, renderer=self.renderer)

    def observe(self, checks: Sequence[Check], inventory: Inventory) -> list[Observation]:
        sandbox = self._sandbox
        if sandbox is None:
            raise DataplaneError("the tutorial's sandbox is not up")
        reader = _flow_reader(sandbox)
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
                futures = [pool.submit(self._observe_one, sandbox, check) for check in checks]
                observed = [future.result() for future in futures]
            events = reader.read(_FLOW_WAIT) if reader is not None else []
            if reader is not None and any(o.allowed is False for o in observed):
                events += reader.read(_FLOW_WAIT)  # the kernel sends a batch every 0.1 s
        finally:
            if reader is not None:
                reader.close()
        return [
            _with_flow_line(o, check, sandbox, inventory, events)
            for o, check in zip(observed, checks, strict=True)
        ]

    def _observe_one(self, sandbox: Sandbox, check: Check) -> Observation:
        try:
            source, destination = sandbox.slot(check.src), sandbox.slot(check.dst)
        except InputError as exc:
            return Observation(None, "not probed", (str(exc),))
        if check.is_dns:
            return self._lookup(sandbox, check, str(destination.ipv4))
        port = "" if check.port == 80 else f":{check.port}"
        curl = ["curl", "-sS", "-m", f"{self.timeout:g}", f"http://{destination.ipv4}{port}/"]
        shown = (
            f"{' '.join(curl)} from {check.src} (network namespace {source.netns}); "
            f"{destination.ipv4} is {check.dst}"
        )
        done = run_in_pod(source, curl, timeout=self.timeout + 10)
        if done.returncode is None:
            return Observation(None, shown, ("curl did not finish",))
        return curl_observation(shown, done.returncode, stdout=done.stdout, stderr=done.stderr)

    def _lookup(self, sandbox: Sandbox, check: Check, address: str) -> Observation:
        shown = f"DNS query, UDP to {address}:53 from {check.src}, {self.timeout:g} s timeout"
        matrix = sandbox.probe_many(
            [(check.port, check.protocol)], timeout=self.timeout, pairs=[(check.src, check.dst)]
        )[0]
        result = matrix.results.get((check.src, check.dst))
        if result is None or result.reachable is None:
            reason = matrix.unprobed.get((check.src, check.dst)) or (
                result.detail if result is not None else "not probed"
            )
            return Observation(None, shown, (reason,))
        if result.reachable:
            return Observation(
                True, shown, (f"reply from {address}#53 (the sandbox's kube-dns echoes queries)",)
            )
        return Observation(False, shown, (";; connection timed out; no servers could be reached",))

    def keep_instructions(self) -> list[str]:
        """What to type to explore the sandbox left up by ``--keep``."""
        sandbox = self._sandbox
        if sandbox is None:
            return []
        pods = sandbox.state.pods
        nginx = pods.get("test/nginx")
        target = f"http://{nginx.ipv4}/" if nginx is not None else "http://POD-IP/"
        source = next((k for k in ("test/busybox", "default/busybox") if k in pods), "NS/POD")
        name = "" if self.name == "default" else f" --name {self.name}"
        return [
            "",
            f"The sandbox {self.name!r} is still up (--keep). Explore it:",
            f"  kubefence sandbox exec{name} {source} -- curl -sS -m 1 {target}",
            f"  kubefence sandbox probe{name} --port 80 -o table",
            f"  kubefence flows{name} -f      # each new connection and the policy behind it",
            f"  kubefence sandbox status{name}",
            f"Remove it with: kubefence sandbox down{name}",
        ]

    def close(self) -> None:
        """Remove every namespace, process and file of the sandbox (also a half-made one); a
        second Ctrl-C waits until that is done."""
        self._sandbox = None
        with _interrupts_deferred():
            down(self.name)
