"""The namespace-isolation walk-through behind ``kubefence tutorial``: steps, runner, rendering.

Why this module exists: people learn NetworkPolicy from one classic walk-through (run nginx in a
namespace, curl it, deny all, allow by label, allow by namespace AND label, default-deny). This
module holds that walk-through as data (``STEPS``: the kubectl commands, the manifests under
``examples/tutorial/`` and the connections to try), replays it against kubefence's reference
evaluator (the prediction, explained by ``cli._render_decision`` exactly as ``kubefence
explain`` does) and, through an ``Observer``, against real packets (``NetnsObserver``: the
sandbox and the machine's own ``curl``), and renders what a user would see plus a final table.
The observer is swappable so unit tests can run without root.

How ``--step N`` works: every step builds on the cluster state of the steps before it, so the
manifests of steps 1..N-1 are applied silently and only step N is shown and checked.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import Protocol as TypingProtocol
from typing import TextIO

from kubefence.api import Inventory, ObjectKey, Pod, Protocol, Service
from kubefence.cli._render_decision import render_text
from kubefence.dataplane.netns import (
    RulesetRenderer,
    Sandbox,
    check_environment,
    check_name,
    down,
    run_in_pod,
)
from kubefence.errors import DataplaneError, EnvironmentProblem, InputError
from kubefence.semantics import DEFAULT_SETTINGS, Decision, Settings, decide, is_backend
from kubefence.sources.files import load_paths, read_documents

__all__ = [
    "STEPS",
    "Action",
    "Check",
    "Console",
    "ManifestState",
    "NetnsObserver",
    "Observation",
    "Observer",
    "Row",
    "Step",
    "TutorialResult",
    "check_step",
    "curl_observation",
    "examples_dir",
    "kubectl_command",
    "run_tutorial",
]

EXAMPLES_RELATIVE = Path("examples") / "tutorial"
NOT_ENFORCED = "NOT ENFORCED — predictions only"


# --- the walk-through as data ---------------------------------------------------------------


class Verb(Enum):
    APPLY = "apply"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the user does: apply or delete a file of ``examples/tutorial/``.

    ``command`` is what a Kubernetes user would type (``kubectl create namespace test`` is the
    same as applying ``test-namespace.yaml``); ``show_yaml`` prints the file (policies);
    ``note`` is shown as a comment after the command."""

    verb: Verb
    file: str
    command: str = ""
    show_yaml: bool = False
    note: str = ""

    def display(self) -> str:
        return self.command or f"kubectl {self.verb.value} -f {EXAMPLES_RELATIVE / self.file}"


@dataclass(frozen=True, slots=True)
class Check:
    """A connection the step tries: ``src`` and ``dst`` are ``ns/pod``.

    ``teaches`` is the outcome the walk-through is about (allowed or not); the runner shows
    kubefence's prediction, and a unit test holds the prediction to ``teaches``."""

    src: str
    dst: str
    _: KW_ONLY
    teaches: bool
    note: str
    port: int = 80
    protocol: Protocol = Protocol.TCP

    @property
    def is_dns(self) -> bool:
        return self.protocol is Protocol.UDP and self.port == 53

    @property
    def connection(self) -> str:
        return f"{self.src} -> {self.dst}:{self.port}/{self.protocol.value}"


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the walk-through; a step may come in parts (4a, 4b) that ``--step`` keeps
    together."""

    number: int
    title: str
    _: KW_ONLY
    intro: str
    actions: tuple[Action, ...]
    checks: tuple[Check, ...]
    part: str = ""

    @property
    def label(self) -> str:
        return f"{self.number}{self.part}"


def _apply(file: str, *, command: str = "", show_yaml: bool = False, note: str = "") -> Action:
    return Action(Verb.APPLY, file, command=command, show_yaml=show_yaml, note=note)


def _delete(file: str) -> Action:
    return Action(Verb.DELETE, file)


def _allowed(
    src: str, dst: str, note: str, *, port: int = 80, protocol: Protocol = Protocol.TCP
) -> Check:
    return Check(src, dst, teaches=True, note=note, port=port, protocol=protocol)


def _denied(
    src: str, dst: str, note: str, *, port: int = 80, protocol: Protocol = Protocol.TCP
) -> Check:
    return Check(src, dst, teaches=False, note=note, port=port, protocol=protocol)


STEPS: tuple[Step, ...] = (
    Step(
        1,
        "Namespaces alone isolate nothing",
        intro="nginx runs in namespace test; busybox runs in namespace default. With no "
        "NetworkPolicy at all, every pod may connect to every other pod.",
        actions=(
            _apply("test-namespace.yaml", command="kubectl create namespace test"),
            _apply("nginx.yaml"),
            _apply("busybox.yaml"),
        ),
        checks=(
            _allowed(
                "default/busybox",
                "test/nginx",
                "no policy selects test/nginx: a different namespace is no barrier",
            ),
        ),
    ),
    Step(
        2,
        "Deny all ingress to nginx",
        intro="deny-all-policy selects the pods labelled app=nginx and lists no ingress rule "
        "(ingress: []): they are isolated for ingress and nothing may connect to them, not "
        "even pods of their own namespace.",
        actions=(
            _apply("test-busybox.yaml"),
            _apply("deny-all-policy.yaml", show_yaml=True),
        ),
        checks=(
            _denied("test/busybox", "test/nginx", "same namespace, still denied"),
            _denied("default/busybox", "test/nginx", "the step-1 connection is cut too"),
        ),
    ),
    Step(
        3,
        "Allow by pod label",
        intro="Remove deny-all-policy and apply allow-policy: only pods labelled app=nginx may "
        "reach nginx. A podSelector without a namespaceSelector only covers the policy's own "
        "namespace, so a pod labelled app=nginx in namespace default stays out.",
        actions=(
            _delete("deny-all-policy.yaml"),
            _apply("clients.yaml"),
            _apply("allow-policy.yaml", show_yaml=True),
        ),
        checks=(
            _allowed("test/client", "test/nginx", "labelled app=nginx, same namespace"),
            _denied("test/busybox", "test/nginx", "no app=nginx label"),
            _denied(
                "default/client",
                "test/nginx",
                "labelled app=nginx, but in namespace default",
            ),
        ),
    ),
    Step(
        4,
        "Allow by namespace AND pod label — then OR",
        intro="Replace allow-policy with allow-different-namespace-policy: one `from` item holding "
        "both a namespaceSelector (env=staging) and a podSelector (app=nginx) admits pods "
        "labelled app=nginx inside namespaces labelled env=staging.",
        actions=(
            _delete("allow-policy.yaml"),
            _apply("staging.yaml"),
            _apply("allow-different-namespace-policy.yaml", show_yaml=True),
        ),
        checks=(
            _allowed("staging/client", "test/nginx", "env=staging namespace AND app=nginx"),
            _denied("staging/busybox", "test/nginx", "right namespace, no app=nginx label"),
            _denied("default/client", "test/nginx", "app=nginx, but not an env=staging namespace"),
            _denied(
                "test/client",
                "test/nginx",
                "allowed in step 3, but namespace test is not env=staging",
            ),
        ),
        part="a",
    ),
    Step(
        4,
        "The same selectors as two list items: OR",
        intro="Written as two `from` items, the selectors are ORed: every pod of an env=staging "
        "namespace, plus pods labelled app=nginx in the policy's own namespace. Replace the "
        "AND policy with it: two connections open up.",
        actions=(
            _delete("allow-different-namespace-policy.yaml"),
            _apply("allow-different-namespace-or-policy.yaml", show_yaml=True),
        ),
        checks=(
            _allowed("staging/client", "test/nginx", "still allowed (first item)"),
            _allowed("staging/busybox", "test/nginx", "opened: any pod of staging"),
            _allowed("test/client", "test/nginx", "opened: app=nginx in namespace test"),
            _denied(
                "default/client",
                "test/nginx",
                "still denied: podSelector alone means the policy's namespace",
            ),
        ),
        part="b",
    ),
    Step(
        5,
        "Default deny of ingress and egress in a namespace",
        intro="Remove the policy of namespace test. In namespace test-policy, "
        "default-ingress-egress-deny selects every pod (podSelector {}) for Ingress and "
        "Egress and allows nothing: no connection gets in or out, DNS lookups included.",
        actions=(
            _delete("allow-different-namespace-or-policy.yaml"),
            _apply("test-policy.yaml"),
            _apply(
                "kube-dns.yaml",
                note="sandbox only: a stand-in for the cluster DNS, which a cluster already has",
            ),
            _apply("default-ingress-egress-deny.yaml", show_yaml=True),
        ),
        checks=(
            _denied("default/busybox", "test-policy/web", "ingress into test-policy"),
            _denied("test-policy/busybox", "test-policy/web", "inside test-policy"),
            _denied("test-policy/busybox", "test/nginx", "egress out of test-policy"),
            _denied(
                "test-policy/busybox",
                "kube-system/kube-dns",
                "DNS is egress too",
                port=53,
                protocol=Protocol.UDP,
            ),
            _allowed(
                "default/busybox",
                "kube-system/kube-dns",
                "other namespaces still resolve names",
                port=53,
                protocol=Protocol.UDP,
            ),
            _allowed("default/busybox", "test/nginx", "namespace test has no policy left"),
        ),
    ),
)


def examples_dir(explicit: str | None = None) -> Path:
    """The directory holding the tutorial's manifests.

    ``explicit`` (``--examples``) wins; else ``examples/tutorial`` of the source checkout this
    module runs from, else of the current directory. Raises ``EnvironmentProblem`` if absent."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    else:
        candidates.append(Path(__file__).resolve().parents[3] / EXAMPLES_RELATIVE)
        candidates.append(Path.cwd() / EXAMPLES_RELATIVE)
    for candidate in candidates:
        if (candidate / STEPS[0].actions[0].file).is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise EnvironmentProblem(
        f"the tutorial's manifests were not found (tried {tried}); run from a kubefence "
        "checkout or pass --examples DIR"
    )


# --- the cluster state, as kubectl apply/delete would leave it ------------------------------


def _object_keys(path: Path) -> frozenset[ObjectKey]:
    documents, problems = read_documents([str(path)])
    if problems:
        details = "; ".join(str(p) for p in problems)
        raise InputError(f"{path}: cannot read the tutorial manifest ({details})")
    return frozenset(key for key in (d.key() for d in documents) if key is not None)


@dataclass(slots=True)
class ManifestState:
    """The files applied so far, in order. Applying a file whose objects replace every object
    of an earlier file (same kind, namespace and name) drops that file, as ``kubectl apply``
    would overwrite the objects; deleting a file removes it."""

    directory: Path
    files: list[str] = field(default_factory=list)

    def run(self, action: Action) -> None:
        if action.verb is Verb.DELETE:
            replaced = _object_keys(self.directory / action.file)
            self.files = [f for f in self.files if _object_keys(self.directory / f) != replaced]
            return
        keys = _object_keys(self.directory / action.file)
        self.files = [f for f in self.files if not _object_keys(self.directory / f) <= keys] + [
            action.file
        ]

    def paths(self) -> list[Path]:
        return [self.directory / f for f in self.files]

    def inventory(self) -> Inventory:
        """The validated objects; files are named relative to the current directory when they
        are under it, so explanations point at ``examples/tutorial/...:LINE``."""
        return load_paths([_short_path(p) for p in self.paths()])


def _short_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- observing real packets ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """What a user saw: ``allowed`` None when the result says neither (an unexpected error)."""

    allowed: bool | None
    command: str  # what actually ran, e.g. "curl -sS -m 1 http://198.18.0.2/ from test/busybox ..."
    lines: tuple[str, ...]  # the first lines of its output, as the user sees them


class Observer(TypingProtocol):
    """A data plane the tutorial replays on. ``sync`` brings it to the cluster state of a step
    (first call: create it), ``observe`` tries the connections, ``close`` removes everything."""

    description: str

    def sync(self, inventory: Inventory, *, files: Sequence[Path]) -> None: ...

    def observe(self, checks: Sequence[Check], inventory: Inventory) -> list[Observation]: ...

    def close(self) -> None: ...


# --- the runner -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the final table."""

    step: str  # the step's label, e.g. "4b"
    check: Check
    decision: Decision
    observation: Observation | None

    @property
    def predicted(self) -> bool:
        return self.decision.allowed

    @property
    def agrees(self) -> bool:
        """True when not enforced, or when what was observed is what was predicted."""
        return self.observation is None or self.observation.allowed == self.predicted


@dataclass(frozen=True, slots=True)
class TutorialResult:
    rows: tuple[Row, ...]
    enforced: bool

    @property
    def mismatches(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if not row.agrees)

    @property
    def exit_code(self) -> int:
        return 1 if self.mismatches else 0


class Console:
    """Where the tutorial writes, with ANSI colour only when asked (``--no-color``, not a TTY
    and ``NO_COLOR`` turn it off in the command)."""

    _CODES: Mapping[str, str] = {
        "bold": "1",
        "dim": "2",
        "green": "32",
        "red": "31",
        "yellow": "33",
        "cyan": "36",
    }

    def __init__(self, stream: TextIO, *, color: bool) -> None:
        self.stream = stream
        self.color = color

    def paint(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(self._CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _verdict(allowed: bool | None) -> str:
    if allowed is None:
        return "?"
    return "allowed" if allowed else "denied"


def check_step(only_step: int | None, *, steps: Sequence[Step] = STEPS) -> list[int]:
    """The step numbers; raises ``InputError`` (exit 2) when ``only_step`` is none of them."""
    numbers = sorted({s.number for s in steps})
    if only_step is not None and only_step not in numbers:
        raise InputError(f"--step must be one of {', '.join(map(str, numbers))}")
    return numbers


def run_tutorial(
    directory: Path,
    *,
    console: Console,
    observer: Observer | None,
    not_enforced_reason: str | None = None,
    only_step: int | None = None,
    settings: Settings = DEFAULT_SETTINGS,
    steps: Sequence[Step] = STEPS,
) -> TutorialResult:
    """Replay ``steps`` (all, or only ``only_step`` on the state of the steps before it).

    With ``observer`` None nothing is enforced: the output says so and why
    (``not_enforced_reason``), and the exit code is 0. The observer is not closed here."""
    numbers = check_step(only_step, steps=steps)
    total = numbers[-1] if numbers else 0
    if observer is None:
        _banner(console, not_enforced_reason)
    else:
        console.line(console.paint(f"Enforced on real packets: {observer.description}", "dim"))
    state = ManifestState(directory)
    rows: list[Row] = []
    for step in steps:
        if only_step is not None and step.number > only_step:
            break
        shown = only_step is None or step.number == only_step
        if shown:
            _render_step_head(console, step, directory, total=total)
        for action in step.actions:
            state.run(action)
        if not shown:
            continue
        inventory = state.inventory()
        if observer is not None:
            observer.sync(inventory, files=state.paths())
        decisions = [
            decide(
                inventory,
                check.src,
                check.dst,
                port=check.port,
                protocol=check.protocol,
                settings=settings,
            )
            for check in step.checks
        ]
        observations: list[Observation | None] = (
            list(observer.observe(step.checks, inventory))
            if observer is not None
            else [None] * len(step.checks)
        )
        for check, decision, observation in zip(step.checks, decisions, observations, strict=True):
            row = Row(step.label, check, decision, observation)
            _render_check(console, row, inventory)
            rows.append(row)
    result = TutorialResult(tuple(rows), enforced=observer is not None)
    _render_table(console, result)
    if observer is None:
        _banner(console, not_enforced_reason)
    return result


# --- rendering ------------------------------------------------------------------------------


def _banner(console: Console, reason: str | None) -> None:
    text = NOT_ENFORCED + (f" ({reason})" if reason else "")
    console.line(console.paint(text, "bold", "yellow"))


def _render_step_head(console: Console, step: Step, directory: Path, *, total: int) -> None:
    console.line()
    title = f"Step {step.label}/{total}: {step.title}"
    console.line(console.paint(f"── {title} " + "─" * max(0, 72 - len(title)), "bold", "cyan"))
    console.line(step.intro)
    for action in step.actions:
        console.line()
        note = console.paint(f"  # {action.note}", "dim") if action.note else ""
        console.line(console.paint(f"$ {action.display()}", "bold") + note)
        if action.show_yaml and action.verb is Verb.APPLY:
            text = (directory / action.file).read_text(encoding="utf-8")
            for yaml_line in text.rstrip("\n").splitlines():
                console.line(console.paint(f"    {yaml_line}", "dim"))


def _service_for(inventory: Inventory, pod: Pod) -> Service | None:
    for service in inventory.services:
        if is_backend(service, pod):
            return service
    return None


def kubectl_command(check: Check, inventory: Inventory) -> str:
    """What a Kubernetes user would type for ``check`` (via the destination's Service)."""
    namespace, name = check.src.split("/", 1)
    dst = inventory.pod_by_key.get(check.dst)
    service = _service_for(inventory, dst) if dst is not None else None
    if check.is_dns:
        return f"kubectl exec -n {namespace} {name} -- nslookup -timeout=1 nginx.test"
    host = f"{service.name}.{service.namespace}" if service is not None else check.dst
    port = "" if check.port == 80 else f":{check.port}"
    return f"kubectl exec -n {namespace} {name} -- curl -sS -m 1 http://{host}{port}"


def _render_check(console: Console, row: Row, inventory: Inventory) -> None:
    check = row.check
    console.line()
    console.line(console.paint(f"$ {kubectl_command(check, inventory)}", "bold"))
    console.line(console.paint(f"  # {check.connection}: {check.note}", "dim"))
    colour = "green" if row.predicted else "red"
    verdict, *because = render_text(row.decision).splitlines()
    console.line(f"  kubefence predicts: {console.paint(verdict, 'bold', colour)}")
    for text in because:
        console.line(f"  {text}")
    observation = row.observation
    if observation is None:
        return
    console.line(f"  observed ({observation.command}):")
    for text in observation.lines or ("(no output)",):
        console.line(console.paint(f"    {text}", "dim"))
    if row.agrees:
        console.line(console.paint("  ✓ as predicted", "green"))
    else:
        console.line(
            console.paint(
                f"  ✗ MISMATCH: predicted {_verdict(row.predicted)}, "
                f"observed {_verdict(observation.allowed)}",
                "bold",
                "red",
            )
        )


def _table_cells(row: Row) -> tuple[str, str, str, str]:
    observed = "not enforced" if row.observation is None else _verdict(row.observation.allowed)
    return (row.step, row.check.connection, _verdict(row.predicted), observed)


def _render_table(console: Console, result: TutorialResult) -> None:
    console.line()
    console.line(console.paint("Summary", "bold"))
    header = ("STEP", "CONNECTION", "EXPECTED", "OBSERVED")
    cells = [_table_cells(row) for row in result.rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(3)]

    def fmt(values: tuple[str, str, str, str]) -> str:
        padded = [v.ljust(w) for v, w in zip(values[:3], widths, strict=True)]
        return "  ".join([*padded, values[3]])

    console.line(fmt(header))
    for row, values in zip(result.rows, cells, strict=True):
        text = fmt(values)
        console.line(text if row.agrees else console.paint(f"{text}  ✗ MISMATCH", "bold", "red"))
    if not result.enforced:
        return
    count = len(result.mismatches)
    if count:
        console.line(
            console.paint(f"{count} observed result(s) differ from the prediction", "bold", "red")
        )
    else:
        console.line(
            console.paint(f"all {len(result.rows)} observed results match the prediction", "green")
        )


# --- choosing the data plane ----------------------------------------------------------------


def enforcement_unavailable() -> str | None:
    """Why real packets cannot be used here (not root, a tool missing), or None."""
    try:
        check_environment(tools=("ip", "nft", "conntrack"))
    except EnvironmentProblem as exc:
        return str(exc)
    if shutil.which("curl") is None:
        return "the tutorial needs the 'curl' command; install with: apt-get install curl"
    return None


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


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
                )
            else:
                self._sandbox.apply(inventory, manifests=manifests, renderer=self.renderer)

    def observe(self, checks: Sequence[Check], inventory: Inventory) -> list[Observation]:
        sandbox = self._sandbox
        if sandbox is None:
            raise DataplaneError("the tutorial's sandbox is not up")
        with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
            futures = [pool.submit(self._observe_one, sandbox, check) for check in checks]
            return [future.result() for future in futures]

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
            f"  kubefence sandbox status{name}",
            f"Remove it with: kubefence sandbox down{name}",
        ]

    def close(self) -> None:
        """Remove every namespace, process and file of the sandbox (also a half-made one); a
        second Ctrl-C waits until that is done."""
        self._sandbox = None
        with _interrupts_deferred():
            down(self.name)
