"""``kubefence tutorial`` on the sandbox cluster: the guide's literal kubectl session (kubectl
run --expose, get all, an interactive ``kubectl run --rm -ti`` shell with curl, each policy
applied with kubectl, the anonymous 403) run for real on 3 nodes and on 1, with every observed
connection as predicted, and nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns


def _tutorial(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEFENCE_STATE": str(tmp_path), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kubefence", "tutorial", "--name", name, "--no-color", *args],
        capture_output=True, text=True, env=env, timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip


def _left_behind(name: str, tmp_path: Path) -> list[str]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left = [line.split()[0] for line in namespaces.splitlines() if f"kf-{name}-" in line]
    if (tmp_path / name).exists():
        left.append(str(tmp_path / name))
    return left


def test_the_walk_through_runs_literally_on_three_nodes(tmp_path: Path) -> None:
    """Every step's kubectl command runs and prints kubectl's own output; the interactive shell
    reaches nginx before the deny-all policy and times out after it; all 20 checks observed as
    predicted; the anonymous request gets the guide's 403; the cluster is gone afterwards."""
    done = _tutorial(tmp_path, "tc3", "--nodes", "3")
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "sandbox cluster 'tc3' (3 nodes" in out
    assert (
        "$ kubectl run nginx --image=nginx --labels app=nginx --namespace test --expose --port 80"
        in out
    )
    assert "pod/nginx created" in out
    assert "service/nginx created" in out
    assert re.search(r"service/nginx\s+ClusterIP\s+198\.19\.\d+\.\d+\s+<none>\s+80/TCP", out)
    first, second = out.split("$ kubectl run busybox --rm -ti --image=alpine")[1:3]
    assert "<title>Welcome to nginx!</title>" in first
    assert 'pod "busybox" deleted' in first
    assert "curl: (28)" in second
    assert "networkpolicy.networking.k8s.io/deny-all-policy created" in out
    assert "all 20 observed results match the prediction" in out
    assert 'forbidden: User \\"system:anonymous\\" cannot get path \\"/\\"' in out
    assert "Kubernetes control plane is running at https://127.0.0.1:" in out
    assert _left_behind("tc3", tmp_path) == []


def test_one_step_on_one_node(tmp_path: Path) -> None:
    """--step 2 on a single node replays step 1 silently (its shell session included) and
    shows only step 2: the deny-all policy seen by both clients."""
    done = _tutorial(tmp_path, "tc1", "--nodes", "1", "--step", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Step 1/6" not in done.stdout
    assert "Step 2/6" in done.stdout
    assert "all 2 observed results match the prediction" in done.stdout
    assert _left_behind("tc1", tmp_path) == []
