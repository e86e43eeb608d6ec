"""Running a user's command inside a sandbox pod's network namespace (``kubectl exec``'s twin).

Why this module exists: the CLI starts no processes (an import contract holds it to that), yet
``kubefence sandbox exec NS/POD -- CMD`` and the tutorial's ``curl`` from a pod need one each.
Both are started here, through ``ip netns exec`` (which also gives the command the namespace's
own ``/sys`` view, as a process in a container would have): ``exec_in_pod`` interactively, with
this process's terminal, and ``run_in_pod`` with its output captured and a timeout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubefence.errors import InputError

if TYPE_CHECKING:
    from kubefence.dataplane.netns import PodSlot

__all__ = ["PodRun", "exec_in_pod", "run_in_pod"]


@dataclass(frozen=True, slots=True)
class PodRun:
    """What a command run in a pod printed; ``returncode`` None when it did not finish within
    its timeout (it was killed; the output is what it had printed by then)."""

    command: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def _text(output: str | bytes | None) -> str:
    if output is None:
        return ""
    return output if isinstance(output, str) else output.decode("utf-8", "replace")


def _argv(netns: str, command: Sequence[str]) -> list[str]:
    if not command:
        raise InputError("no command to run in the pod")
    return ["ip", "netns", "exec", netns, *command]


def run_in_pod(slot: PodSlot, command: Sequence[str], *, timeout: float) -> PodRun:
    """Run ``command`` in the pod's network namespace, capturing its text output; after
    ``timeout`` seconds it is killed and reported as timed out. Raises ``InputError`` when the
    command (or ``ip``) does not exist."""
    argv = _argv(slot.netns, command)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return PodRun(
            command=tuple(command),
            returncode=None,
            stdout=_text(exc.stdout),
            stderr=_text(exc.stderr),
        )
    except FileNotFoundError as exc:
        raise InputError(f"cannot run {argv[0]!r}: {exc.strerror}") from exc
    return PodRun(
        command=tuple(command), returncode=done.returncode, stdout=done.stdout, stderr=done.stderr
    )


def exec_in_pod(name: str, pod: str, command: Sequence[str]) -> int:
    """Run ``command`` in pod ``pod`` (``NS/POD``) of sandbox ``name`` with this process's
    stdin, stdout and stderr, as ``kubectl exec -it`` would; return its exit status.

    Raises ``InputError`` when the sandbox is not up, the pod does not run in it (with the
    reason, e.g. a hostNetwork pod) or the command cannot be started."""
    from kubefence.dataplane.netns import require_state

    if not command:
        raise InputError("no command to run in the pod")
    state = require_state(name)
    slot = state.pods.get(pod)
    if slot is None:
        reason = state.unprobed.get(pod, "no such pod in this sandbox")
        raise InputError(f"pod {pod}: {reason}")
    argv = _argv(slot.netns, command)
    try:
        return subprocess.call(argv)
    except FileNotFoundError as exc:
        raise InputError(f"cannot run {command[0]!r}: {exc.strerror}") from exc
