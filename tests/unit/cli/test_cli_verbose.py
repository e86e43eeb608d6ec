"""``-v`` on explain, matrix and diff: each adds something useful, and only when asked.

Why this module exists: ``-v`` used to be accepted and ignored by these commands. What each
now adds is pinned here: explain shows every rule and every port entry's verdict; matrix
reports its pod classes, port classes and phase times on stderr (stdout unchanged, for
scripts); diff explains each changed connection before and after.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubefence.cli.main import main

CLUSTER = """\
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}], nodeName: n1}
status: {podIP: 198.18.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres, ports: [{containerPort: 5432, name: pg}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: pg}]
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 443}, {port: 8000, endPort: 8100}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-admin, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{ipBlock: {cidr: 198.18.9.0/24}}]
"""

OPENS_PG = """\
  - from: [{podSelector: {}}]
    ports: [{port: 5432}]
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER)
    return path


@pytest.fixture
def opened(tmp_path: Path) -> Path:
    """The same cluster with a third db-ingress rule: any pod of shop on 5432."""
    path = tmp_path / "opened.yaml"
    marker = "    ports: [{port: 443}, {port: 8000, endPort: 8100}]\n"
    path.write_text(CLUSTER.replace(marker, marker + OPENS_PG))
    return path


def _explain(capsys: pytest.CaptureFixture[str], path: Path, port: str, *extra: str) -> str:
    argv = ["explain", "-f", str(path), "--from", "shop/client", "--to", "shop/db"]
    assert main([*argv, "--port", port, *extra]) == 0
    return capsys.readouterr().out


def test_explain_v_shows_every_rule_with_each_port_entrys_verdict(
    cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without -v a denial shows each policy's nearest rule; with -v every rule, the peer
    misses of each, its port entries marked, and how the endpoints were understood."""
    plain = _explain(capsys, cluster, "5432")
    assert "(nearest of 2 rules)" in plain
    assert "app=api" not in plain  # rule 0 is not the nearest: not shown
    verbose = _explain(capsys, cluster, "5432", "-v")
    lines = [line.strip() for line in verbose.splitlines()]
    assert lines[0] == "DENIED: shop/client -> shop/db on 5432/TCP"
    assert lines[1] == "from: shop/client (pod on node n1)"
    assert lines[2] == "to: shop/db (pod)"
    assert "shop/db-ingress (" in verbose
    assert any(line.endswith("2 rules, none allows it:") for line in lines)
    assert "peer 0 needs pod label app=api; pod shop/client has app=client" in lines
    assert "ports: pg/TCP (= 5432 at the destination) (matches)" in lines
    assert "ports: 443/TCP (no), 8000-8100/TCP (no)" in lines
    assert "ports: any port (matches)" in lines  # db-admin's rule lists no port
    assert plain.splitlines()[0] == verbose.splitlines()[0]


def test_explain_v_names_isolating_policies_that_admit_nothing_on_an_allowed_side(
    cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _explain(capsys, cluster, "8050")
    verbose = _explain(capsys, cluster, "8050", "-v")
    assert plain.startswith("ALLOWED")
    assert "db-admin (" not in plain
    assert re.search(r"shop/db-admin \(\S+:\d+\): isolates it too, but no rule of it", verbose)
    assert "shop/db-ingress rule 1 (" in verbose


def test_explain_v_leaves_json_as_it_is(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON already holds every field of the decision; -v does not change it."""
    assert _explain(capsys, cluster, "5432", "-o", "json") == _explain(
        capsys, cluster, "5432", "-o", "json", "-v"
    )


def test_matrix_v_reports_classes_and_phase_times_on_stderr_only(
    cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["matrix", "-f", str(cluster), "-o", "json"]) == 0
    plain_out, plain_err = capsys.readouterr()
    assert main(["matrix", "-f", str(cluster), "-o", "json", "-v"]) == 0
    out, err = capsys.readouterr()
    assert out == plain_out
    assert plain_err == ""
    lines = [line.removeprefix("kubefence matrix: ") for line in err.splitlines()]
    assert "2 pods in 1 namespace, 2 policies" in lines
    assert "4 port classes (each answers for all its ports):" in lines
    assert "  8000-8100/TCP: ports 8000-8100" in lines
    assert "  other/TCP: every TCP port no policy names, computed on 1" in lines
    assert any(re.fullmatch(r"\d+ pod class(es)? \(.*\)", line) for line in lines)
    timed = [line.split(":")[0] for line in lines if re.search(r": \d+\.\d ms$", line)]
    assert timed == [
        "load and validate the manifests",
        "prepare (pod classes, policies compiled)",
        "matrix 443/TCP",
        "matrix 5432/TCP",
        "matrix 8000-8100/TCP",
        "matrix other/TCP",
        "render json",
        "total",
    ]


def test_matrix_v_with_port_times_the_one_matrix(
    cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["matrix", "-f", str(cluster), "--port", "5432", "-v"]) == 0
    err = capsys.readouterr().err
    assert "kubefence matrix: matrix 5432/TCP: " in err
    assert "port classes" not in err


def test_diff_v_explains_each_change_before_and_after(
    cluster: Path, opened: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["diff", "-f", str(cluster), "--against", str(opened)]
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert main([*argv, "-v"]) == 0
    verbose = capsys.readouterr().out
    assert verbose.startswith(plain)
    extra = verbose[len(plain) :].splitlines()
    assert extra[:3] == [
        "",
        "shop/client -> shop/db on 5432/TCP: denied -> allowed",
        "  before: DENIED: shop/client -> shop/db on 5432/TCP",
    ]
    after = extra.index("  after: ALLOWED: shop/client -> shop/db on 5432/TCP")
    assert any("rule 2 (" in line and "opened.yaml" in line for line in extra[after:])
    assert main([*argv, "-v", "-o", "json"]) == 0  # JSON unchanged by -v
    assert "before:" not in capsys.readouterr().out


def test_diff_v_names_the_port_class_of_other_ports(
    tmp_path: Path, cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A change on ports no policy names is explained on the class's representative port."""
    no_policies = tmp_path / "pods.yaml"
    no_policies.write_text(CLUSTER.split("---\napiVersion: networking")[0])
    assert main(["diff", "-f", str(no_policies), "--against", str(cluster), "-v"]) == 0
    out = capsys.readouterr().out
    assert (
        "shop/client -> shop/db on every TCP port no policy names, e.g. 1: allowed -> denied" in out
    )


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("explain", "every rule of every isolating policy"),
        ("matrix", "pod classes and port classes computed and the time each phase took"),
        ("diff", "explain each changed connection before and after"),
        ("validate", "also list skipped kinds and notes"),
    ],
)
def test_each_command_says_what_v_adds(
    command: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert words in " ".join(capsys.readouterr().out.split())
