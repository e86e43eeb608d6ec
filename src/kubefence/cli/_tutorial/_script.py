"""The walk-through as data: its steps, the kubectl commands shown, the manifests, the checks.

Why this module exists: the story (run nginx in a namespace, curl it, deny all, allow by label,
allow by namespace AND label, then OR, default-deny) is what a reader follows and what reviewers
change; keeping it apart from the runner and the rendering means a new step is a change here
only. ``teaches`` on each check is the outcome the story claims; a unit test holds kubefence's
prediction to it. The manifests themselves are files under ``examples/tutorial/``.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from enum import Enum
from pathlib import Path

from kubefence.api import Inventory, Pod, Protocol, Service
from kubefence.errors import EnvironmentProblem
from kubefence.semantics import is_backend

__all__ = [
    "EXAMPLES_RELATIVE",
    "STEPS",
    "Action",
    "Check",
    "Step",
    "Verb",
    "examples_dir",
    "kubectl_command",
]

EXAMPLES_RELATIVE = Path("examples") / "tutorial"


class Verb(Enum):
    APPLY = "apply"
    DELETE = "delete"
    SHOW = "show"  # on a cluster only: a command that changes nothing (kubectl get all -n test)
    SESSION = "session"  # on a cluster only: an interactive command and the lines typed into it


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the user does: apply or delete a file of ``examples/tutorial/``, or, on the
    sandbox cluster only, look (``SHOW``) or work in a shell (``SESSION``).

    ``command`` is what a Kubernetes user would type (``kubectl create namespace test`` is the
    same as applying ``test-namespace.yaml``; on the sandbox cluster that command itself runs);
    ``show_yaml`` prints the file (policies); ``note`` is shown as a comment after the command;
    ``typed`` are the lines a ``SESSION`` types at the shell's prompt, where ``{NS/POD}`` stands
    for that pod's address."""

    verb: Verb
    file: str
    command: str = ""
    show_yaml: bool = False
    note: str = ""
    typed: tuple[str, ...] = ()

    @property
    def cluster_only(self) -> bool:
        return self.verb in (Verb.SHOW, Verb.SESSION)

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
    cluster_only: bool = False  # shown on the sandbox cluster only (it needs an API server)

    @property
    def label(self) -> str:
        return f"{self.number}{self.part}"


def _apply(file: str, *, command: str = "", show_yaml: bool = False, note: str = "") -> Action:
    return Action(Verb.APPLY, file, command=command, show_yaml=show_yaml, note=note)


def _delete(file: str) -> Action:
    return Action(Verb.DELETE, file)


def _show(command: str) -> Action:
    return Action(Verb.SHOW, "", command=command)


def _session(command: str, *typed: str, note: str = "") -> Action:
    return Action(Verb.SESSION, "", command=command, typed=typed, note=note)


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
            _apply(
                "nginx.yaml",
                command="kubectl run nginx --image=nginx --labels app=nginx --namespace test "
                "--expose --port 80",
            ),
            _show("kubectl get all -n test"),
            _session(
                "kubectl run busybox --rm -ti --image=alpine -- /bin/sh",
                "apk add curl",
                "curl {test/nginx}:80",
                "exit",
            ),
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
            _apply("deny-all-policy.yaml", show_yaml=True),
            _session(
                "kubectl run busybox --rm -ti --image=alpine --namespace test -- /bin/sh",
                "curl -m 3 {test/nginx}:80",
                "exit",
                note="the same curl now times out (-m 3: three seconds, not curl's two minutes)",
            ),
            _apply("test-busybox.yaml"),
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
    Step(
        6,
        "The control plane: TLS, and nothing for anonymous users",
        intro="NetworkPolicy guards the pods; the API server that stores the policies must be "
        "guarded too. The sandbox cluster's API server listens on TLS only, with its own "
        "certificate authority, and answers an anonymous request with 403 Forbidden; kubectl "
        "gets in with the admin's client certificate, and RBAC decides what each user may do.",
        actions=(
            _show("kubectl cluster-info"),
            _show("curl -sk {server}/"),
        ),
        checks=(),
        cluster_only=True,
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
        candidates.append(Path(__file__).resolve().parents[4] / EXAMPLES_RELATIVE)
        candidates.append(Path.cwd() / EXAMPLES_RELATIVE)
    for candidate in candidates:
        if (candidate / STEPS[0].actions[0].file).is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise EnvironmentProblem(
        f"the tutorial's manifests were not found (tried {tried}); run from a kubefence "
        "checkout or pass --examples DIR"
    )


def _service_for(inventory: Inventory, pod: Pod) -> Service | None:
    for service in inventory.services:
        if is_backend(service, pod):
            return service
    return None


def kubectl_command(check: Check, inventory: Inventory) -> str:
    """What a Kubernetes user would type for ``check``: curl the destination pod's address
    when the inventory knows it (a live cluster, as the guide does), else its Service's name."""
    namespace, name = check.src.split("/", 1)
    dst = inventory.pod_by_key.get(check.dst)
    service = _service_for(inventory, dst) if dst is not None else None
    if check.is_dns:
        return f"kubectl exec -n {namespace} {name} -- nslookup -timeout=1 nginx.test"
    if dst is not None and dst.ips:
        host = str(dst.ips[0])
    elif service is not None:
        host = f"{service.name}.{service.namespace}"
    else:
        host = check.dst
    port = "" if check.port == 80 else f":{check.port}"
    return f"kubectl exec -n {namespace} {name} -- curl -sS -m 1 http://{host}{port}"
