"""``kubefence matrix``: formats, port classes, the per-namespace switch and exit codes.

Why this module exists: scripts depend on ``matrix -o json`` (docs/matrix-json.md) and people
read the table; these pin both, and that bad options exit 2 without a traceback.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from kubefence.cli.main import main

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: test}
---
apiVersion: v1
kind: Pod
metadata: {name: busybox, namespace: default}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, namespace: test, labels: {app: nginx}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80, name: http}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: default}}}]
    ports: [{port: http}, {protocol: UDP, port: 53}]
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(MANIFESTS)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["matrix", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_with_port_is_the_design_object(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--port 80 -o json`` prints the object of docs/matrix-json.md; nginx only admits default."""
    code, out, _ = run(capsys, "-f", str(manifest), "--port", "80", "-o", "json")
    assert code == 0
    assert json.loads(out) == {
        "port": "80",
        "protocol": "TCP",
        "endpoints": ["default/busybox", "test/nginx"],
        "rows": ["11", "11"],
    }


def test_s21_named_port_json_resolves_per_destination(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--port http``: busybox declares no http port, so nothing reaches it on that name."""
    code, out, _ = run(capsys, "-f", str(manifest), "--port", "http", "-o", "json")
    assert code == 0
    assert json.loads(out)["rows"] == ["11", "01"]


def test_without_port_json_lists_every_port_class(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ``--port``: one object per mentioned port class plus "other", per protocol."""
    code, out, _ = run(capsys, "-f", str(manifest), "-o", "json")
    assert code == 0
    docs = json.loads(out)
    assert [(d["port"], d["protocol"]) for d in docs] == [
        ("80", "TCP"),
        ("other", "TCP"),
        ("53", "UDP"),
        ("other", "UDP"),
    ]
    other_tcp = docs[1]
    assert other_tcp["rows"] == ["10", "11"]


def test_table_marks_denied_cells(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table names every pod and shows a denied cell as '.'."""
    code, out, _ = run(capsys, "-f", str(manifest), "--port", "443")
    assert code == 0
    assert "port 443/TCP: 2 pods in 2 namespaces; 1 of 2" in out
    assert "0  default/busybox  1  ." in out


def test_table_switches_to_namespace_summary_for_large_clusters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Beyond 40 pods the table summarises per namespace; ``--per-pod`` forces the grid."""
    docs = []
    for n in range(3):
        docs.append(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n")
        for i in range(15):
            docs.append(
                f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: ns{n}}}\n"
                "spec: {containers: [{name: c, image: i}]}\n"
            )
    docs.append(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: deny, namespace: ns0}\nspec: {podSelector: {}}\n"
    )
    path = tmp_path / "big.yaml"
    path.write_text("---\n".join(docs))
    code, out, _ = run(capsys, "-f", str(path), "--port", "80")
    assert code == 0
    assert "FROM NAMESPACE" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("ns")}
    assert lines["ns0"].split()[1] == "450/660"  # ns0 may reach ns1 and ns2, not itself
    assert "ns1, ns2" in lines["ns0"]
    assert lines["ns1"].split()[1] == "435/660"
    code, out, _ = run(capsys, "-f", str(path), "--port", "80", "--per-pod")
    assert code == 0
    assert "ns2/p14" in out
    assert "FROM NAMESPACE" not in out


def test_csv_has_one_row_per_source(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CSV: a header with every destination, then 0/1 per cell."""
    code, out, _ = run(capsys, "-f", str(manifest), "--port", "9999", "-o", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [
        ["port", "protocol", "source", "default/busybox", "test/nginx"],
        ["9999", "TCP", "default/busybox", "1", "0"],
        ["9999", "TCP", "test/nginx", "1", "1"],
    ]


def test_markdown_renders_a_table(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Markdown output is a heading and a pipe table."""
    code, out, _ = run(capsys, "-f", str(manifest), "--port", "80", "-o", "md")
    assert code == 0
    assert "### Port 80/TCP" in out
    assert "| test/nginx | 1 | 1 |" in out


def test_dot_groups_pods_by_namespace(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DOT: one cluster per namespace, and an edge only for allowed connections."""
    code, out, _ = run(capsys, "-f", str(manifest), "--port", "9999", "-o", "dot")
    assert code == 0
    assert out.count("subgraph cluster_") == 2
    assert '"test/nginx" -> "default/busybox" [label="9999/TCP"];' in out
    assert '"default/busybox" -> "test/nginx"' not in out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--port", "0", "out of range"), ("--protocol", "ICMP", "unknown protocol")],
)
def test_bad_port_or_protocol_exits_2(
    manifest: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    """An invalid port or protocol is a usage error (exit 2) with a message, no traceback."""
    code, _, err = run(capsys, "-f", str(manifest), option, value)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_per_pod_output_refuses_huge_clusters(
    manifest: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the per-pod limit, json/csv/dot exit 2 pointing at the namespace table, which
    still works."""
    from kubefence.cli.commands import matrix as command

    monkeypatch.setattr(command, "PER_POD_MAX", 1)
    code, _, err = run(capsys, "-f", str(manifest), "--port", "80", "-o", "json")
    assert code == 2
    assert "per-namespace summary" in err
    code, out, _ = run(capsys, "-f", str(manifest), "--port", "80")
    assert code == 0
    assert "port 80/TCP" in out
