"""``--setting NAME=BOOL``: the implementation-defined choices, from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubefence.cli.main import main

DENY_ALL = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"""


@pytest.fixture
def manifests(tmp_path: Path) -> str:
    path = tmp_path / "deny.yaml"
    path.write_text(DENY_ALL)
    return str(path)


def test_s07_self_traffic_setting_changes_the_explain_verdict(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """By default a pod reaches itself under deny-all (S07); with the setting off it does not."""
    argv = ["explain", "-f", manifests, "--from", "shop/web", "--to", "shop/web", "--port", "80"]
    assert main([*argv, "--expect", "allow"]) == 0
    off = [*argv, "--setting", "self_traffic_allowed=false", "--expect", "deny"]
    assert main(off) == 0
    assert capsys.readouterr().out.count("DENIED") == 1


def test_s07_self_traffic_setting_reaches_the_matrix(
    manifests: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """matrix passes the setting to the engine: the lone pod's own cell follows it."""
    assert main(["matrix", "-f", manifests, "--port", "80", "-o", "csv"]) == 0
    default_out = capsys.readouterr().out
    assert main(["matrix", "-f", manifests, "--port", "80", "-o", "csv", "--setting",
                 "self-traffic-allowed=no"]) == 0  # fmt: skip
    assert capsys.readouterr().out != default_out


@pytest.mark.parametrize("bad", ["nosuch=true", "self_traffic_allowed", "ipblock_matches_pods=2"])
def test_unknown_setting_or_value_is_a_usage_error(
    manifests: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong --setting exits 2 naming the valid settings or values, without a traceback."""
    argv = ["explain", "-f", manifests, "--from", "shop/web", "--to", "shop/web", "--port", "80"]
    assert main([*argv, "--setting", bad]) == 2
    err = capsys.readouterr().err
    assert "--setting" in err
    assert "Traceback" not in err
