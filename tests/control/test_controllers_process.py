"""The controllers as a process: flags, leader election (a standby never acts; a clean stop
hands over at once, a SIGKILLed leader within the lease), and a restart that neither loses nor
duplicates pods."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.control.conftest import Cluster
from tests.control.test_controllers import PODS, FakeNodes, _lease_holder, wait_for

from kubefence.client import Kube, connect


def _start(cluster: Cluster, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kubefence.controllers",
             "--kubeconfig", str(cluster.info.directory / "controller-manager.kubeconfig"),
             *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Iterator[Kube]:
    client = connect(cluster.kubeconfig)
    nodes = FakeNodes(client)
    nodes.add("node-a", 1)
    nodes.add("node-b", 2)
    beat = threading.Thread(target=nodes.run, daemon=True)
    beat.start()
    yield client
    nodes.stop.set()
    beat.join(timeout=5)
    client.close()


def _deployment(replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    })  # fmt: skip


def _pods(kube: Kube, ns: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in kube.list(PODS.path(namespace=ns))[0])


def test_bad_flags_exit_2(cluster: Cluster) -> None:
    config = str(cluster.info.directory / "controller-manager.kubeconfig")
    result = subprocess.run(
        [sys.executable, "-m", "kubefence.controllers", "--kubeconfig", config,
         "--controllers", "scheduler,nonsense"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown controllers: nonsense" in result.stderr


def test_standby_waits_clean_stop_hands_over_and_restart_keeps_pods(
    cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    log = tmp_path / "controllers.log"
    first = _start(cluster, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: _lease_holder(kube).startswith(f"{socket.gethostname()}_{first.pid}_"),
                 what="first leads")  # fmt: skip
        second = _start(cluster, log)
        cluster.kubectl("create", "namespace", "lead")
        cluster.kubectl("apply", "-n", "lead", "-f", "-", input=_deployment(6))
        wait_for(lambda: len(_pods(kube, "lead")) == 6, what="6 pods")
        time.sleep(1.0)
        assert len(_pods(kube, "lead")) == 6  # the standby made none
        before = _pods(kube, "lead")
        # a clean stop releases the lease: the standby leads within a few seconds
        assert _stop(first) == 0
        started = time.monotonic()
        assert second is not None
        wait_for(lambda: _lease_holder(kube).startswith(f"{socket.gethostname()}_{second.pid}_"),
                 timeout=15, what="second leads")  # fmt: skip
        assert time.monotonic() - started < 10
        standby = _start(cluster, log)  # a standby stopped by a signal also exits 0
        time.sleep(2.0)
        assert _stop(standby) == 0
        cluster.kubectl("scale", "deploy/web", "-n", "lead", "--replicas=8")
        wait_for(lambda: len(_pods(kube, "lead")) == 8, what="8 pods")
        assert set(before) <= set(_pods(kube, "lead"))  # the new leader kept the old pods
        # SIGKILL: nobody releases; a new process takes over when the lease expires (15 s)
        _stop(second, signal.SIGKILL)
        third = _start(cluster, log)
        try:
            wait_for(
                lambda: _lease_holder(kube).startswith(f"{socket.gethostname()}_{third.pid}_"),
                timeout=45, what="third leads",
            )  # fmt: skip
            cluster.kubectl("scale", "deploy/web", "-n", "lead", "--replicas=3")
            wait_for(lambda: len(_pods(kube, "lead")) == 3, what="3 pods")
            time.sleep(1.0)
            assert len(_pods(kube, "lead")) == 3
        finally:
            assert _stop(third) == 0
    finally:
        _stop(first)
        if second is not None:
            _stop(second)
        cluster.kubectl("delete", "namespace", "lead", "--wait=false", check=False)


def test_only_the_chosen_controllers_run(cluster: Cluster, kube: Kube, tmp_path: Path) -> None:
    process = _start(cluster, tmp_path / "log", "--controllers", "replicasets,deployments",
                     "--leader-elect", "false")  # fmt: skip
    try:
        cluster.kubectl("create", "namespace", "partial")
        cluster.kubectl("apply", "-n", "partial", "-f", "-", input=_deployment(2))
        wait_for(lambda: len(_pods(kube, "partial")) == 2, what="2 pods")
        time.sleep(1.5)
        # no scheduler among them: the pods stay unbound
        items, _ = kube.list(PODS.path(namespace="partial"))
        assert all(not p["spec"].get("nodeName") for p in items)
    finally:
        assert _stop(process) == 0
        cluster.kubectl("delete", "namespace", "partial", "--wait=false", check=False)
