"""Pure parts of the sandbox's machine interface: prerequisites, nginx detection, probes."""

from __future__ import annotations

import ipaddress

import pytest

from kubefence.api import Protocol
from kubefence.cli import main as cli_main
from kubefence.dataplane.netns import Outcome, ProbeTarget, _system, check_environment
from kubefence.dataplane.netns._probe import run_probes
from kubefence.dataplane.netns._sctp import crc32c, init_packet, parse_init
from kubefence.dataplane.netns._server import is_nginx_image
from kubefence.errors import EnvironmentProblem


def test_missing_root_and_tools_are_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root or nft the message names both and the apt-get command (exit 3 family)."""
    monkeypatch.setattr(_system.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(_system.shutil, "which", lambda tool: None if tool == "nft" else "/x")
    with pytest.raises(EnvironmentProblem) as info:
        check_environment()
    message = str(info.value)
    assert "root" in message
    assert "'nft'" in message
    assert "apt-get install nftables" in message


def test_cli_sandbox_without_root_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubefence sandbox up` as a normal user exits 3 and says what is missing."""
    monkeypatch.setattr(_system.os, "geteuid", lambda: 1000)
    code = cli_main.main(["sandbox", "up", "-f", "examples/quickstart", "--name", "nobody"])
    assert code == 3
    assert "root" in capsys.readouterr().err


def test_cli_sandbox_rejects_bad_names(capsys: pytest.CaptureFixture[str]) -> None:
    """A sandbox name that cannot be a namespace prefix is a usage error (exit 2)."""
    assert cli_main.main(["sandbox", "status", "--name", "Bad_Name"]) == 2
    assert "invalid sandbox name" in capsys.readouterr().err


@pytest.mark.parametrize("timeout", ["-1", "0", "abc", "61"])
def test_cli_sandbox_rejects_bad_timeouts(timeout: str) -> None:
    """A probe timeout must be a positive number of seconds (usage error, exit 2)."""
    with pytest.raises(SystemExit) as info:
        cli_main.main(["sandbox", "probe", "--timeout", timeout])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("image", "nginx"),
    [
        ("nginx", True),
        ("nginx:1.25", True),
        ("docker.io/library/nginx@sha256:abc", True),
        ("registry:5000/team/nginx-unprivileged:1", True),
        ("busybox", False),
        ("nginxproxy/other:1", False),
    ],
)
def test_nginx_images_are_recognised(image: str, nginx: bool) -> None:
    """Pods whose image repository is nginx answer HTTP on port 80 with the welcome page."""
    assert is_nginx_image(image) is nginx


def test_sctp_without_destination_namespace_is_never_counted_as_probed() -> None:
    """An SCTP probe that cannot be watched for is reported unprobed with its reason, never
    reachable or denied."""
    target = ProbeTarget(
        src="a/x",
        dst="a/y",
        netns="kf-none-0",
        address=ipaddress.ip_address("198.18.0.3"),
        port=9,
        protocol=Protocol.SCTP,
    )
    [result] = run_probes([target])
    assert result.outcome is Outcome.UNPROBED
    assert result.reachable is None
    assert "SCTP" in result.detail


def test_crc32c_known_vector() -> None:
    """The SCTP checksum is CRC32c: the standard check value of "123456789" is 0xE3069283."""
    assert crc32c(b"123456789") == 0xE3069283


def test_sctp_init_packet_round_trip_and_checksum() -> None:
    """An INIT carries ports, verification tag 0 and a CRC32c over the packet (little-endian)."""
    packet = init_packet(40000, 132, 0xDEADBEEF)
    assert len(packet) == 32
    assert parse_init(packet) == (40000, 132, 0xDEADBEEF)
    assert packet[4:8] == b"\0\0\0\0"
    zeroed = packet[:8] + b"\0\0\0\0" + packet[12:]
    assert int.from_bytes(packet[8:12], "little") == crc32c(zeroed)
    assert parse_init(packet[:19]) is None
