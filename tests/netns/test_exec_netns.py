"""Commands run inside a sandbox pod (``run_in_pod``, ``exec_in_pod``): the pod's own network,
captured output, timeouts, and the errors a user can cause."""

from __future__ import annotations

import pytest
from tests.netns.conftest import QUICKSTART_PODS, SandboxMaker, inventory_of

from kubefence.dataplane.netns import exec_in_pod, run_in_pod
from kubefence.errors import InputError

pytestmark = pytest.mark.netns


def test_run_in_pod_sees_the_pods_own_address_and_times_out(make_sandbox: SandboxMaker) -> None:
    """The command runs in the pod's namespace (its eth0 has the pod's address); its output is
    captured; a command that outlives the timeout is killed and reported as timed out."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    slot = sandbox.slot("test/nginx")
    done = run_in_pod(slot, ["ip", "-o", "addr", "show", "dev", "eth0"], timeout=10)
    assert done.returncode == 0, done.stderr
    assert f"inet {slot.ipv4}/" in done.stdout
    assert not done.timed_out
    slow = run_in_pod(slot, ["sleep", "5"], timeout=0.3)
    assert slow.timed_out
    assert slow.returncode is None
    failed = run_in_pod(slot, ["sh", "-c", "echo oops >&2; exit 3"], timeout=10)
    assert (failed.returncode, failed.stderr) == (3, "oops\n")


def test_exec_in_pod_returns_the_exit_status_and_names_unknown_pods(
    make_sandbox: SandboxMaker,
) -> None:
    """The exit status is the command's; an unknown pod or an empty command is an input error."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    assert exec_in_pod(sandbox.name, "test/client", ["true"]) == 0
    assert exec_in_pod(sandbox.name, "test/client", ["sh", "-c", "exit 4"]) == 4
    with pytest.raises(InputError, match="pod test/nobody: no such pod in this sandbox"):
        exec_in_pod(sandbox.name, "test/nobody", ["true"])
    with pytest.raises(InputError, match="no command"):
        exec_in_pod(sandbox.name, "test/client", [])
