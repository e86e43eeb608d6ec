"""``--family ipv4|ipv6`` on matrix, explain and diff: exact ipBlock verdicts on dual-stack pods.

Why this module exists: without ``--family`` a dual-stack pod matches an ipBlock when any of its
addresses does, which no single packet sees; these pin that each family gives the answer for
its own packets, on a cluster where the two families differ, and that the option is documented.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubefence.cli.main import main

PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 198.18.1.5, podIPs: [{ip: 198.18.1.5}, {ip: "fd00:1::5"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres, ports: [{containerPort: 5432}]}]}
status: {podIP: 198.18.1.9, podIPs: [{ip: 198.18.1.9}, {ip: "fd00:1::9"}]}
"""


def _policy(cidr: str) -> str:
    return f"""\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: db-ingress, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress:
  - from: [{{ipBlock: {{cidr: "{cidr}"}}}}]
    ports: [{{port: 5432}}]
"""


@pytest.fixture
def v4_block(tmp_path: Path) -> Path:
    """db admits 198.18.1.0/24 only: the client's IPv4 packets, not its IPv6 ones."""
    path = tmp_path / "v4.yaml"
    path.write_text(PODS + _policy("198.18.1.0/24"))
    return path


@pytest.fixture
def v6_block(tmp_path: Path) -> Path:
    path = tmp_path / "v6.yaml"
    path.write_text(PODS + _policy("fd00:1::/64"))
    return path


def _rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(["matrix", *argv, "--port", "5432", "-o", "json"]) == 0
    rows: list[str] = json.loads(capsys.readouterr().out)["rows"]
    return rows


def test_matrix_family_gives_each_familys_packets_their_own_answer(
    v4_block: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """client -> db: allowed for IPv4 packets, denied for IPv6 ones; without --family a pod
    matches the ipBlock by any address, so it reads allowed."""
    assert _rows(capsys, "-f", str(v4_block)) == ["11", "11"]
    assert _rows(capsys, "-f", str(v4_block), "--family", "ipv4") == ["11", "11"]
    assert _rows(capsys, "-f", str(v4_block), "--family", "ipv6") == ["10", "11"]


def test_explain_family_decides_on_the_familys_address(
    v4_block: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The IPv6 verdict is a denial that names the IPv6 address outside the block."""
    base = ["explain", "-f", str(v4_block), "--from", "shop/client", "--to", "shop/db"]
    assert main([*base, "--port", "5432", "--family", "ipv4", "--expect", "allow"]) == 0
    capsys.readouterr()
    assert main([*base, "--port", "5432", "--family", "ipv6", "--expect", "deny"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("DENIED: shop/client -> shop/db on 5432/TCP")
    assert "peer 0 is ipBlock 198.18.1.0/24; fd00:1::5 is outside it" in out


def test_explain_rejects_an_address_of_the_other_family(
    v4_block: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No packet of --family ipv4 carries an IPv6 address: a usage error, exit 2."""
    argv = ["explain", "-f", str(v4_block), "--from", "fd00:1::5", "--to", "shop/db"]
    assert main([*argv, "--port", "5432", "--family", "ipv4"]) == 2
    assert "--from fd00:1::5 is an IPv6 address, but --family is ipv4" in capsys.readouterr().err
    assert main([*argv, "--port", "5432", "--family", "ipv6", "--expect", "allow"]) == 1


def test_diff_family_reports_the_change_each_family_sees(
    v4_block: Path, v6_block: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moving the ipBlock from IPv4 to IPv6 closes client -> db for IPv4 packets and opens it
    for IPv6 ones; without --family both versions read allowed: no change."""
    base = ["diff", "-f", str(v4_block), "--against", str(v6_block), "-o", "json"]
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False
    main([*base, "--family", "ipv4"])
    v4 = json.loads(capsys.readouterr().out)
    assert v4["denied"] == [
        {"from": "shop/client", "to": "shop/db", "port": "5432", "protocol": "TCP"}
    ]
    assert v4["allowed"] == []
    main([*base, "--family", "ipv6"])
    v6 = json.loads(capsys.readouterr().out)
    assert [(c["from"], c["to"], c["port"]) for c in v6["allowed"]] == [
        ("shop/client", "shop/db", "5432")
    ]
    assert v6["denied"] == []


@pytest.mark.parametrize("command", ["matrix", "explain", "diff"])
def test_family_is_documented_in_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--family {ipv4,ipv6}" in out
    assert "packets of this address family only" in out


def test_unknown_family_is_a_usage_error(
    v4_block: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["matrix", "-f", str(v4_block), "--family", "ipv5"])
    assert exit_.value.code == 2
    assert "invalid choice: 'ipv5'" in capsys.readouterr().err
