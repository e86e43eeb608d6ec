"""Making, checking and removing one pod on a sandbox node (the node component's hands).

Why this module exists: the component (``_component``) decides *when* a pod is made or removed
from API events; this module is *how*: the pod's namespace and address (``dataplane.netns``),
its ports on the node server, its ``resolv.conf``, its container processes (each under a
``_logpipe`` supervisor in a session of its own, so they outlive the component; the supervisor
writes the CRI log and the exit code, which a restarted component still reads) and their
removal. Every step tolerates a
half-made pod, so a crash at any point is repaired by doing the step again.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubefence.dataplane.netns import (
    NodePlan,
    PodPorts,
    PodRecord,
    PodSlot,
    ProcessRecord,
    node_pod_add,
    node_pod_remove,
    node_server_request,
    pod_slot,
    process_alive,
    start_process,
)
from kubefence.node._catalogue import ContainerPlan, PodPlan
from kubefence.node._status import now

__all__ = ["PodHands", "pod_key"]

ETC_NETNS = Path("/etc/netns")
DNS_SERVICE_IP = "198.19.0.10"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_APK = "#!/bin/sh\n# kubefence sandbox: the host's tools are there; 'apk add' is a no-op\nexit 0\n"


def pod_key(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


@dataclass(frozen=True, slots=True)
class PodHands:
    """The pod-level operations of one node: ``node`` its plan, ``directory`` its state
    directory (pods/<uid>/ for logs, exit codes and stdin FIFOs; bin/ for the shims)."""

    node: NodePlan
    directory: Path
    python: str

    @property
    def attach_supported(self) -> bool:
        """Is ``kubefence.node._process`` (attachable processes) installed?"""
        try:
            return importlib.util.find_spec("kubefence.node._process") is not None
        except ImportError:
            return False

    @property
    def server_dir(self) -> Path:
        return self.directory / "server"

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    def pod_dir(self, uid: str) -> Path:
        return self.directory / "pods" / uid

    def log_path(self, uid: str, container: str) -> Path:
        return self.pod_dir(uid) / f"{container}.log"

    def install_shims(self) -> None:
        """``apk`` (a no-op) and ``agnhost`` (``python -m kubefence.node._agnhost``)."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        shims = {
            "apk": _APK,
            "agnhost": f'#!/bin/sh\nexec {self.python} -m kubefence.node._agnhost "$@"\n',
        }
        for name, text in shims.items():
            path = self.bin_dir / name
            path.write_text(text)
            path.chmod(0o755)

    def slot(self, record: PodRecord) -> PodSlot | None:
        if record.host_network:
            return None
        return pod_slot(
            self.node, key=record.key, slot_index=record.slot_index, offset=record.offset
        )

    def netns(self, record: PodRecord) -> str:
        slot = self.slot(record)
        return self.node.netns if slot is None else slot.netns

    def addresses(self, record: PodRecord) -> list[str]:
        slot = self.slot(record)
        if slot is None:
            return [str(self.node.address_v4), str(self.node.address_v6)]
        return [str(slot.ipv4), str(slot.ipv6)]

    # -- the network -------------------------------------------------------------------------
    def make_network(self, record: PodRecord, pod: Mapping[str, Any]) -> None:
        """The pod's namespace, veth, addresses and routes (missing parts only) and its
        resolv.conf pointing at cluster DNS."""
        slot = self.slot(record)
        if slot is None:
            return
        if not (Path("/run/netns") / slot.netns).exists():
            node_pod_add(self.node, [slot])
        spec = pod.get("spec") or {}
        if spec.get("dnsPolicy", "ClusterFirst") in ("ClusterFirst", "ClusterFirstWithHostNet"):
            namespace = (pod.get("metadata") or {}).get("namespace", "default")
            directory = ETC_NETNS / slot.netns
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "resolv.conf").write_text(
                f"nameserver {DNS_SERVICE_IP}\n"
                f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
                "options ndots:5\n"
            )

    def serve(self, record: PodRecord, plan: PodPlan, hostname: str) -> None:
        if not plan.tcp and not plan.udp:
            return
        ports = PodPorts(
            key=record.key,
            netns=self.netns(record),
            hostname=hostname,
            tcp=plan.tcp,
            udp=plan.udp,
            udp_hostname=plan.udp_hostname,
        )
        node_server_request(self.server_dir, {"op": "add", "pod": ports.to_json()})

    # -- processes ---------------------------------------------------------------------------
    def start(
        self, record: PodRecord, container: ContainerPlan, pod: Mapping[str, Any]
    ) -> ProcessRecord:
        directory = self.pod_dir(record.uid)
        directory.mkdir(parents=True, exist_ok=True)
        exit_file = directory / f"{container.name}.exit"
        exit_file.unlink(missing_ok=True)
        env = self.container_env(record, container.name, pod)
        supervisor = [self.python, "-m", "kubefence.node._logpipe",
                      "--log", str(self.log_path(record.uid, container.name)),
                      "--exit", str(exit_file)]  # fmt: skip
        if container.stdin:
            fifo = directory / f"{container.name}.stdin"
            if not fifo.exists():
                os.mkfifo(fifo, 0o600)
            supervisor += ["--stdin", str(fifo)]
        started = start_process(
            [*supervisor, "--", *container.argv],
            netns=self.netns(record),
            log=directory / f"{container.name}.supervisor.log",
            env=env,
            cwd=directory,
        )
        return ProcessRecord(pid=started.pid, start_time=started.start_time, started_at=now())

    def container_env(
        self, record: PodRecord, container: str, pod: Mapping[str, Any]
    ) -> dict[str, str]:
        metadata = pod.get("metadata") or {}
        env = {
            "PATH": f"{self.bin_dir}:{_PATH}",
            "HOME": "/root",
            "HOSTNAME": str(metadata.get("name", "")),
            "KUBEFENCE_POD": record.key,
            "TERM": "xterm",
        }
        for spec in (pod.get("spec") or {}).get("containers") or ():
            if isinstance(spec, Mapping) and spec.get("name") == container:
                for item in spec.get("env") or ():
                    if isinstance(item, Mapping) and isinstance(item.get("value"), str):
                        env[str(item["name"])] = item["value"]
        return env

    async def spawn_interactive(
        self, record: PodRecord, container: ContainerPlan, pod: Mapping[str, Any]
    ) -> Any:
        """An attachable main process (``kubefence.node._process.ContainerProcess``) on the
        caller's event loop; None when that module is not installed."""
        try:
            process_module = importlib.import_module("kubefence.node._process")
        except ImportError:
            return None
        directory = self.pod_dir(record.uid)
        directory.mkdir(parents=True, exist_ok=True)
        return await process_module.ContainerProcess.spawn(
            list(container.argv),
            netns=self.netns(record),
            tty=container.tty,
            stdin=container.stdin,
            stdin_once=container.stdin_once,
            log_path=self.log_path(record.uid, container.name),
            env=self.container_env(record, container.name, pod),
            cwd=directory,
        )

    def exit_code(self, record: PodRecord, container: str) -> int:
        """The exit status the supervisor wrote; 137 (killed) when it wrote none."""
        try:
            return int((self.pod_dir(record.uid) / f"{container}.exit").read_text().strip())
        except (OSError, ValueError):
            return 137

    @staticmethod
    def alive(process: ProcessRecord) -> bool:
        return process_alive(process.pid, process.start_time)

    @staticmethod
    def kill(process: ProcessRecord) -> None:
        """SIGKILL the process's whole session (the wrapper and what it started)."""
        if process_alive(process.pid, process.start_time):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    # -- removal -----------------------------------------------------------------------------
    def remove(self, record: PodRecord) -> None:
        """Kill its processes, close its ports, remove its namespace, links and files."""
        for process in record.processes.values():
            self.kill(process)
        with contextlib.suppress(Exception):
            node_server_request(self.server_dir, {"op": "remove", "key": record.key})
        slot = self.slot(record)
        if slot is not None:
            node_pod_remove(self.node, [slot])
        shutil.rmtree(self.pod_dir(record.uid), ignore_errors=True)
