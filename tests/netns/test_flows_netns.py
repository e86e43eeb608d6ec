"""``kubefence flows`` on real packets: one line per connection with the right explanation, and
a flood that stays under the flow log's rate limit and reports what it did not log.

Each test brings up its own sandbox with a flow log (torn down by the fixture) and runs the
command as a separate process, as a user would, reading its JSON lines; connections are made
from inside the pods' namespaces.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from tests.netns.conftest import (
    ALLOW_POLICY,
    DENY_ALL_INGRESS,
    QUICKSTART_PODS,
    inventory_of,
    unique_name,
)

from kubefence.dataplane.netns import Sandbox, entered
from kubefence.dataplane.nft import FlowLog

pytestmark = pytest.mark.netns

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "flow-log"


@pytest.fixture
def flow_sandbox(sandbox_names: list[str]) -> Sandbox:
    name = unique_name()
    sandbox_names.append(name)
    text = QUICKSTART_PODS + ALLOW_POLICY
    return Sandbox.up(
        inventory_of(text),
        name=name,
        manifests=[("manifests.yaml", text.encode())],
        flow_log=FlowLog(rate=100, burst=50),
    )


@contextmanager
def flows_running(*args: str, duration: float) -> Iterator[subprocess.Popen[str]]:
    """``kubefence flows ARGS -o json --duration D`` running; entered once it has bound its
    NFLOG group(s) (its banner is out); killed if the block fails, else left to finish."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kubefence.cli.main", "flows", *args),
            *("-o", "json", "--duration", str(duration)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert banner.startswith("kubefence flows:"), banner + process.stderr.read()
        yield process  # ``flow_records`` reads its output (a flood fills more than a pipe)
    except BaseException:
        process.kill()
        process.communicate(timeout=30)
        raise


def flow_records(process: subprocess.Popen[str], *, timeout: float = 90) -> list[dict[str, object]]:
    """The JSON lines a finished ``flows_running`` process printed (it must exit 0)."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _flows(
    name: str, *extra: str, duration: float
) -> AbstractContextManager[subprocess.Popen[str]]:
    return flows_running("--name", name, *extra, duration=duration)


def _tcp(sandbox: Sandbox, source: str, destination: str, port: int) -> bool:
    with entered(sandbox.slot(source).netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(0.5)
        try:
            sock.connect((str(sandbox.slot(destination).ipv4), port))
        except OSError:
            return False
        return True


def test_denied_and_allowed_connection_each_one_line_with_explanation(
    flow_sandbox: Sandbox,
) -> None:
    with _flows(flow_sandbox.name, duration=2.5) as process:
        assert not _tcp(flow_sandbox, "default/busybox", "test/nginx", 80)
        assert _tcp(flow_sandbox, "test/client", "test/nginx", 80)
    records = [r for r in flow_records(process) if "verdict" in r]
    denied = [r for r in records if r["verdict"] == "denied"]
    allowed = [r for r in records if r["verdict"] == "allowed"]
    assert len(denied) == 1, records
    assert len(allowed) == 1, records
    assert denied[0]["source"] == "default/busybox"
    assert denied[0]["destination"] == "test/nginx"
    assert (denied[0]["port"], denied[0]["protocol"]) == (80, "TCP")
    assert denied[0]["droppedBy"] == "in_c1"
    assert denied[0]["explanation"] == (
        "ingress at test/nginx: isolated by test/allow-policy, no rule allows it"
    )
    assert denied[0]["predicted"] == "denied"
    assert allowed[0]["source"] == "test/client"
    assert allowed[0]["explanation"] == "ingress at test/nginx: allowed by test/allow-policy rule 0"
    assert allowed[0]["predicted"] == "allowed"


def test_filters_by_verdict_and_namespace(flow_sandbox: Sandbox) -> None:
    with _flows(flow_sandbox.name, "--verdict", "allowed", duration=2.0) as process:
        _tcp(flow_sandbox, "default/busybox", "test/nginx", 80)
        _tcp(flow_sandbox, "test/client", "test/nginx", 80)
    verdicts = [r["verdict"] for r in flow_records(process) if "verdict" in r]
    assert verdicts == ["allowed"]
    with _flows(flow_sandbox.name, "-n", "default", duration=2.0) as process:
        _tcp(flow_sandbox, "default/busybox", "test/nginx", 80)
        _tcp(flow_sandbox, "test/client", "test/nginx", 80)
    sources = [r["source"] for r in flow_records(process) if "verdict" in r]
    assert sources == ["default/busybox"]


def test_flood_stays_under_the_rate_limit_and_reports_its_drops(flow_sandbox: Sandbox) -> None:
    """10,000 new (denied) UDP connections from one pod: at most burst + rate x time are
    logged, the rest is counted by nft and reported; together they are all 10,000."""
    flood = 10_000
    with entered(flow_sandbox.slot("default/busybox").netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = str(flow_sandbox.slot("test/nginx").ipv4)
    with _flows(flow_sandbox.name, duration=3.0) as process, sock:
        started = time.monotonic()
        for port in range(20_000, 20_000 + flood):
            sock.sendto(b"x", (target, port))
        elapsed = time.monotonic() - started
    assert_flood_accounted(flow_records(process), flood=flood, elapsed=elapsed, burst=50, rate=100)


def assert_flood_accounted(
    records: list[dict[str, object]], *, flood: int, elapsed: float, burst: int, rate: int
) -> None:
    """A denied flood of ``flood`` connections sent in ``elapsed`` seconds: at least the burst
    and at most burst + rate x time were logged, the last drop report counts the rest, and
    the reader lost nothing."""
    logged = [r for r in records if r.get("verdict") == "denied"]
    reports = [r for r in records if "notLogged" in r]
    assert reports, records[-3:]
    not_logged = int(reports[-1]["notLogged"])  # type: ignore[call-overload]
    assert len(logged) <= burst + rate * (elapsed + 1.0), (len(logged), elapsed)
    assert len(logged) >= burst
    assert len(logged) + not_logged == flood
    assert reports[-1]["readerOverruns"] == 0


def test_flow_log_golden_loads_into_the_kernel(flow_sandbox: Sandbox) -> None:
    """The reviewed flow-log golden files are valid nftables (the default ones are checked by
    test_nft_syntax.py)."""
    from kubefence.dataplane.netns._system import run

    for path in sorted(GOLDEN.glob("*.nft")):
        run(["nft", "-c", "-f", str(path)], netns=flow_sandbox.state.node_netns)


def test_without_a_flow_log_the_command_says_so(sandbox_names: list[str]) -> None:
    name = unique_name()
    sandbox_names.append(name)
    Sandbox.up(inventory_of(QUICKSTART_PODS), name=name)
    done = subprocess.run(
        [sys.executable, "-m", "kubefence.cli.main", "flows", "--name", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "without a flow log" in done.stderr


def test_tutorial_shows_the_flow_line_under_each_timed_out_curl(
    sandbox_names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from kubefence.cli.main import main

    name = unique_name()
    sandbox_names.append(name)
    assert main(["tutorial", "--on", "sandbox", "--name", name, "--no-color", "--step", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    timed_out = [i for i, line in enumerate(lines) if "curl: (28)" in line]
    assert timed_out
    for index in timed_out:
        flow = lines[index + 1].strip()
        assert flow.startswith("kubefence flows: "), lines[index - 2 : index + 3]
        assert flow.endswith(
            "-> test/nginx 80/TCP  ingress at test/nginx: isolated by "
            "test/deny-all-policy, no rule allows it"
        )


def test_apply_keeps_the_flow_log(flow_sandbox: Sandbox) -> None:
    """The flow log recorded by ``up`` is in every later ruleset, whole or updated."""
    flow_sandbox.apply(inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS))
    again = Sandbox.attach(flow_sandbox.name, inventory_of(QUICKSTART_PODS + ALLOW_POLICY))
    assert again.flow_log == FlowLog(rate=100, burst=50)
    again.apply(inventory_of(QUICKSTART_PODS + ALLOW_POLICY), whole_table=True)
    text = (flow_sandbox.directory / "ruleset.nft").read_text()
    assert 'log prefix "kf deny in_c1" group 17' in text
    assert "ct state new jump flow_allow" in text
    assert not _tcp(flow_sandbox, "default/busybox", "test/nginx", 80)


def test_ipv6_connections_are_logged_and_named(flow_sandbox: Sandbox) -> None:
    with _flows(flow_sandbox.name, duration=2.0) as process:
        with entered(flow_sandbox.slot("default/busybox").netns):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(0.5)
            with pytest.raises(OSError):
                sock.connect((str(flow_sandbox.slot("test/nginx").ipv6), 80))
    records = [r for r in flow_records(process) if "verdict" in r]
    assert [(r["source"], r["destination"], r["verdict"]) for r in records] == [
        ("default/busybox", "test/nginx", "denied")
    ]
    assert str(records[0]["destinationAddress"]).startswith("fd00:")
