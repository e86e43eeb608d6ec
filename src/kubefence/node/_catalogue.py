"""The image catalogue: what a container "runs" on a sandbox node, decided from its pod spec (pure).

Why this module exists: sandbox nodes run no container images; each image name maps to
behaviour that is enough for network policy work (docs/nodes.md lists it):

- ``nginx``: the nginx welcome page over HTTP on its declared TCP ports (80 when none);
- ``busybox`` / ``alpine``: the container's command runs in the pod's network namespace with
  the host's tools (``sh``, ``curl``, ``nc``, ``wget``, ``nslookup``) and an ``apk`` that
  succeeds without doing anything; with no command, ``sh`` (kept waiting when ``stdin`` is set,
  for ``kubectl attach``/``run -ti``);
- ``agnhost``: ``serve-hostname`` (the default) answers the pod's name on its declared TCP and
  UDP ports; any other sub-command (``connect``, ...) runs the ``agnhost`` shim
  (``kubefence.node._agnhost``);
- ``kubefence/dns``: cluster DNS (``kubefence.node._dns``, run inside the node component) in
  the pod's namespace, as the kube-dns add-on asks;
- anything else: the generic server answers on the declared ports, and the pod gets a Warning
  event ``ImageNotInCatalogue``.

Keeping this pure makes the decision testable without root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ContainerPlan", "PodPlan", "image_kind", "plan_pod"]

_SHELL_IMAGES = ("busybox", "alpine")
_SERVING_AGNHOST = ("serve-hostname", "netexec", "pause", "porter", "")


def image_kind(image: str) -> str:
    """``nginx``, ``shell``, ``agnhost``, ``dns`` or ``generic`` for an image reference
    (registry, tag and digest ignored: ``registry.k8s.io/e2e-test-images/agnhost:2.53`` is
    agnhost)."""
    path = image.split("@", 1)[0].lower()
    if path.rsplit(":", 1)[0].endswith("kubefence/dns"):
        return "dns"
    repository = path.rsplit("/", 1)[-1].split(":", 1)[0]
    if repository.startswith("nginx"):
        return "nginx"
    if repository in _SHELL_IMAGES:
        return "shell"
    if repository == "agnhost":
        return "agnhost"
    return "generic"


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """One container: its image kind, the command to run (empty: served by the node server
    only) and whether it waits on stdin."""

    name: str
    image: str
    kind: str
    argv: tuple[str, ...] = ()
    stdin: bool = False
    tty: bool = False
    stdin_once: bool = False

    @property
    def interactive(self) -> bool:
        """A process for ``kubectl attach`` (``stdin`` or ``tty``): run in the node component,
        which holds its terminal or pipes."""
        return bool(self.argv) and (self.stdin or self.tty)


@dataclass(frozen=True, slots=True)
class PodPlan:
    """What the node does for one pod: the ports the node server opens (``tcp`` port -> mode)
    and the containers' processes; ``unknown_images`` names images not in the catalogue."""

    containers: tuple[ContainerPlan, ...]
    tcp: Mapping[int, str] = field(default_factory=dict)
    udp: tuple[int, ...] = ()
    udp_hostname: bool = False
    unknown_images: tuple[str, ...] = ()
    dns: bool = False  # a kubefence/dns container: the node runs cluster DNS in the pod


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _ports(container: Mapping[str, Any]) -> list[tuple[int, str]]:
    found = []
    for port in container.get("ports") or ():
        if isinstance(port, Mapping) and isinstance(port.get("containerPort"), int):
            found.append((int(port["containerPort"]), str(port.get("protocol") or "TCP")))
    return found


def _agnhost_argv(command: Sequence[str], args: Sequence[str]) -> tuple[str, ...]:
    """The agnhost sub-command line: ``command`` is usually ``/agnhost`` (dropped)."""
    words = [*command, *args]
    if words and words[0].rsplit("/", 1)[-1] == "agnhost":
        words = words[1:]
    if words and words[0] in ("sh", "/bin/sh") and len(words) >= 3 and words[1] == "-c":
        return tuple(words)  # a shell line: run as written, with the agnhost shim on PATH
    return tuple(words)


def _tcp_mode(kind: str) -> str:
    return {"nginx": "http", "agnhost": "hostname"}.get(kind, "banner")


def plan_pod(spec: Mapping[str, Any]) -> PodPlan:
    """The plan for a pod ``spec``."""
    containers: list[ContainerPlan] = []
    tcp: dict[int, str] = {}
    udp: set[int] = set()
    udp_hostname = False
    unknown: list[str] = []
    for container in spec.get("containers") or ():
        if not isinstance(container, Mapping):
            continue
        name = str(container.get("name", ""))
        image = str(container.get("image", ""))
        kind = image_kind(image)
        command, args = _strings(container.get("command")), _strings(container.get("args"))
        stdin = bool(container.get("stdin"))
        tty = bool(container.get("tty"))
        stdin_once = bool(container.get("stdinOnce"))
        argv: tuple[str, ...] = ()
        ports = _ports(container)
        if kind == "nginx" and not any(p == "TCP" for _, p in ports):
            ports.append((80, "TCP"))
        if kind == "shell":
            # No ENTRYPOINT, CMD ["sh"]: args alone replace the CMD.
            argv = (*command, *args) if command else (args or ("sh",))
        elif kind == "agnhost":
            words = _agnhost_argv(command, args)
            if words and words[0] not in _SERVING_AGNHOST:
                argv = words if words[0] in ("sh", "/bin/sh") else ("agnhost", *words)
            udp_hostname = True
        elif kind == "generic":
            unknown.append(image)
        if kind != "dns":
            for port, protocol in ports:
                if protocol == "UDP":
                    udp.add(port)
                elif protocol == "TCP":
                    tcp.setdefault(port, _tcp_mode(kind))
        containers.append(ContainerPlan(name=name, image=image, kind=kind, argv=argv, stdin=stdin,
                                        tty=tty, stdin_once=stdin_once))  # fmt: skip
    return PodPlan(
        containers=tuple(containers),
        tcp=dict(sorted(tcp.items())),
        udp=tuple(sorted(udp)),
        udp_hostname=udp_hostname,
        unknown_images=tuple(unknown),
        dns=any(c.kind == "dns" for c in containers),
    )
