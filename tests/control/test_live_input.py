"""Live-cluster input: ``matrix``/``explain``/``audit``/``diff`` read an API server (read-only,
paginated) and answer exactly what they answer for the same objects given as files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.control.conftest import Cluster

from kubefence.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"

EXTRA = """
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: prod, labels: {app: api}}
spec: {containers: [{name: c, image: img, ports: [{name: web, containerPort: 8080}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-test, namespace: prod}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: test}}}]
    ports: [{port: web}]
"""

ADDRESSES = {
    ("test", "nginx"): "198.18.1.2",
    ("test", "client"): "198.18.1.3",
    ("default", "busybox"): "198.18.1.4",
    ("prod", "api"): "198.18.2.2",
}


@pytest.fixture(scope="module")
def live(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cluster holding quickstart + EXTRA with pod addresses; returns a dump of it."""
    cluster.kubectl("apply", "-f", str(QUICKSTART / "cluster.yaml"))
    cluster.kubectl("apply", "-f", str(QUICKSTART / "allow-policy.yaml"))
    cluster.kubectl("apply", "-f", "-", input=EXTRA)
    for (namespace, name), ip in ADDRESSES.items():
        code, _ = cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}},
            content_type="application/merge-patch+json",
        )
        assert code == 200
    dump = tmp_path_factory.mktemp("live") / "dump.yaml"
    listed = cluster.kubectl("get", "namespaces,pods,networkpolicies", "-A", "-o", "yaml")
    dump.write_text(listed.stdout)
    return dump


def without_locations(value: Any) -> Any:
    """``value`` without the "file" and "line" of each finding (a file has lines, the API
    server's objects none)."""
    if isinstance(value, dict):
        return {k: without_locations(v) for k, v in value.items() if k not in ("file", "line")}
    if isinstance(value, list):
        return [without_locations(v) for v in value]
    return value


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_matrix_of_the_live_cluster_equals_matrix_of_the_same_objects_as_files(
    cluster: Cluster, live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, from_api, err = run(
        capsys, "matrix", "--kubeconfig", str(cluster.kubeconfig), "-A", "-o", "json"
    )
    assert code == 0, err
    code, from_files, err = run(capsys, "matrix", "-f", str(live), "-o", "json")
    assert code == 0, err
    assert json.loads(from_api) == json.loads(from_files)
    pods = json.loads(from_api)
    text = json.dumps(pods)
    assert "prod/api" in text
    assert "test/nginx" in text


def test_one_namespace_reads_only_its_pods_and_policies(
    cluster: Cluster, live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "matrix", "--kubeconfig", str(cluster.kubeconfig), "-n", "prod", "-o", "json"
    )
    assert code == 0, err
    text = json.dumps(json.loads(out))
    assert "prod/api" in text
    assert "test/nginx" not in text


def test_explain_and_audit_read_the_live_cluster_as_files(
    cluster: Cluster, live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(cluster.kubeconfig)
    for args in (
        ("explain", "--from", "test/client", "--to", "prod/api", "--port", "8080"),
        ("explain", "--from", "default/busybox", "--to", "prod/api", "--port", "8080"),
        ("audit", "-o", "json"),
    ):
        live_code, from_api, _ = run(capsys, *args, "--kubeconfig", kubeconfig, "-A")
        file_code, from_files, _ = run(capsys, *args, "-f", str(live))
        # The same answer; files add where each rule is written ("(dump.yaml:266)").
        assert live_code == file_code, args
        if args[-1] == "json":
            assert without_locations(json.loads(from_api)) == without_locations(
                json.loads(from_files)
            ), args
        else:
            assert from_api == re.sub(r" \([^()]*dump\.yaml:\d+\)", "", from_files), args
    _, out, _ = run(
        capsys, "explain", "--from", "default/busybox", "--to", "prod/api", "--port", "8080",
        "--kubeconfig", kubeconfig, "-A",
    )  # fmt: skip
    assert "api-from-test" in out


def test_diff_of_the_live_cluster_against_new_manifests(
    cluster: Cluster, live: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = tmp_path / "new.yaml"
    deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    deny += "metadata: {name: deny, namespace: default}\nspec: {podSelector: {}}\n"
    new.write_text(live.read_text() + "---\n" + deny)
    code, out, err = run(
        capsys, "diff", "--kubeconfig", str(cluster.kubeconfig), "-A", "--against", str(new),
        "-o", "json",
    )  # fmt: skip
    assert code in (0, 1), err
    assert "default/busybox" in out
    assert json.loads(out)["changed"] is True


def test_live_input_usage_and_failures(
    cluster: Cluster, live: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kubeconfig = str(cluster.kubeconfig)
    code, _, err = run(capsys, "matrix", "--kubeconfig", kubeconfig, "-f", str(live))
    assert code == 2
    assert "exclude each other" in err
    code, _, err = run(capsys, "matrix")
    assert code == 2
    assert "--kubeconfig" in err
    broken = tmp_path / "unreachable.kubeconfig"
    port = cluster.port
    broken.write_text(cluster.kubeconfig.read_text().replace(f":{port}", ":1"))
    code, _, err = run(capsys, "matrix", "--kubeconfig", str(broken), "-A")
    assert code == 3, err
    assert "cannot read the API server" in err
    code, _, err = run(capsys, "matrix", "--kubeconfig", str(tmp_path / "missing"), "-A")
    assert code == 2, err
