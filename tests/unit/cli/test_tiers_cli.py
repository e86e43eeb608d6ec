"""The CLI with admin tiers and with kinds it does not evaluate.

Why this module exists: ``explain`` must name the tier, policy, priority and rule that decided
(text and JSON); commands run by the engine evaluate ClusterNetworkPolicy, those run by the data
plane refuse it instead of ignoring it (exit 2); and every analysis reports kinds it skipped,
refusing policy-carrying ones (Cilium, Calico) unless ``--no-strict``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubefence import Cluster
from kubefence.cli.main import main

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: a}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: b}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 9
  subject: {pods: {podSelector: {matchLabels: {app: b}}}}
  ingress:
  - name: no-http
    action: Deny
    from: [{namespaces: {}}]
    protocols: [{tcp: {destinationPort: {number: 80}}}]
  - {name: rest, action: Pass, from: [{namespaces: {}}]}
"""

CILIUM = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c}
spec: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: m}
---
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: c, image: i}]}
"""


@pytest.fixture
def tiers(tmp_path: Path) -> str:
    path = tmp_path / "tiers.yaml"
    path.write_text(MANIFESTS, encoding="utf-8")
    return str(path)


@pytest.fixture
def cilium(tmp_path: Path) -> str:
    path = tmp_path / "cilium.yaml"
    path.write_text(CILIUM, encoding="utf-8")
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_names_the_deciding_rule(capsys: pytest.CaptureFixture[str], tiers: str) -> None:
    code, out, _ = _run(
        capsys, "explain", "-f", tiers, "--from", "default/a", "--to", "default/b", "--port", "80"
    )
    assert code == 0
    assert out.splitlines()[0] == "DENIED: default/a -> default/b on 80/TCP"
    assert "ingress at default/b: Admin tier, Deny (denied) by" in out
    assert f"ClusterNetworkPolicy guard (Admin, priority 9) rule 0 'no-http' ({tiers}:" in out


def test_explain_shows_the_pass(capsys: pytest.CaptureFixture[str], tiers: str) -> None:
    code, out, _ = _run(
        capsys, "explain", "-f", tiers, "--from", "default/a", "--to", "default/b", "--port", "81"
    )
    assert code == 0
    assert "Admin tier passes it to the NetworkPolicy tier: ClusterNetworkPolicy guard" in out
    assert "rule 1 'rest'" in out


def test_explain_json_has_the_tier_fields(capsys: pytest.CaptureFixture[str], tiers: str) -> None:
    argv = ["explain", "-f", tiers, "--from", "default/a", "--to", "default/b", "--port", "80"]
    code, out, _ = _run(capsys, *argv, "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "deny"
    assert data["ingress"]["tier"] == "Admin"
    rule = data["ingress"]["tier_rule"]
    assert (rule["policy"], rule["priority"], rule["rule"], rule["rule_name"]) == (
        "guard",
        9,
        0,
        "no-http",
    )
    assert data["not_evaluated"] == {}


def test_matrix_evaluates_tiers(capsys: pytest.CaptureFixture[str], tiers: str) -> None:
    """The engine evaluates the Admin tier: the Deny on 80 holds, the Pass on 81 lets the
    (absent) NetworkPolicy tier allow."""
    for port, cell in (("80", "0"), ("81", "1")):
        code, out, err = _run(capsys, "matrix", "-f", tiers, "--port", port, "-o", "json")
        assert code == 0, err
        data = json.loads(out)
        assert data["endpoints"] == ["default/a", "default/b"]
        assert data["rows"] == [f"1{cell}", "11"]


@pytest.mark.parametrize("argv", [["audit"], ["diff", "--against", "{f}"]])
def test_engine_commands_accept_tiers(
    capsys: pytest.CaptureFixture[str], tiers: str, argv: list[str]
) -> None:
    code, _, err = _run(capsys, *[a.format(f=tiers) for a in argv], "-f", tiers)
    assert code == 0, err
    assert "admin tiers" not in err


def test_dataplane_commands_accept_tiers(tiers: str) -> None:
    """nftables enforces admin tiers now, so the sandbox's commands accept them like the
    engine's (the kinds check refuses only policy kinds nothing evaluates)."""
    import argparse

    from kubefence.cli._inputs import check_kinds
    from kubefence.sources.files import load_paths

    inventory = load_paths([tiers])
    for command in ("matrix", "sandbox"):
        check_kinds(inventory, argparse.Namespace(), command=command)


def test_cluster_matrix_evaluates_tiers(tiers: str) -> None:
    cluster = Cluster.load(tiers)
    for port in (80, 81):
        matrix = cluster.matrix(port=port)
        assert matrix.allowed("default/a", "default/b") == cluster.can_reach(
            "default/a", "default/b", port=port
        )
    assert not cluster.matrix(port=80).allowed("default/a", "default/b")


def test_policy_kinds_not_read_are_refused_unless_no_strict(
    capsys: pytest.CaptureFixture[str], cilium: str
) -> None:
    code, _, err = _run(capsys, "matrix", "-f", cilium, "--port", "80")
    assert code == 2
    assert "policy kinds kubefence does not evaluate: 1 CiliumNetworkPolicy" in err
    code, out, err = _run(capsys, "matrix", "-f", cilium, "--port", "80", "--no-strict")
    assert code == 0
    assert out
    assert "kubefence matrix: not evaluated: 1 CiliumNetworkPolicy, 1 ConfigMap" in err


def test_explain_json_lists_kinds_not_evaluated(
    capsys: pytest.CaptureFixture[str], cilium: str
) -> None:
    argv = ["explain", "-f", cilium, "--no-strict", "--from", "default/a", "--to", "default/a"]
    code, out, _ = _run(capsys, *argv, "--port", "80", "-o", "json")
    assert code == 0
    assert json.loads(out)["not_evaluated"] == {"CiliumNetworkPolicy": 1, "ConfigMap": 1}


def test_validate_counts_cluster_policies(capsys: pytest.CaptureFixture[str], tiers: str) -> None:
    code, out, _ = _run(capsys, "validate", "-f", tiers)
    assert code == 0
    assert out.startswith("ok: 1 namespace, 2 pods, 0 policies, 1 cluster policy (")
