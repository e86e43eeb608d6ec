"""Fixtures for real-packet tests: sandboxes that are always torn down, and inventory helpers.

Every sandbox a test makes gets a unique name and is removed by ``down`` after the test, whether
it passed, failed or crashed half-way through ``up``.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubefence.api import Inventory
from kubefence.dataplane.netns import Outcome, ProbeResult, Sandbox, down
from kubefence.semantics import DEFAULT_SETTINGS, Settings

_COUNTER = itertools.count()

SandboxMaker = Callable[..., Sandbox]


def unique_name() -> str:
    return f"t{os.getpid()}-{next(_COUNTER)}"


def inventory_of(text: str) -> Inventory:
    """Validated inventory from a multi-document YAML string, read as ``-f -`` reads it."""
    from kubefence.sources.files import STDIN, load_paths

    return load_paths([STDIN], stdin=io.BytesIO(text.encode()))


def _leftovers() -> list[str]:
    """Namespaces and server processes of this test process's sandboxes that still exist."""
    prefix = f"t{os.getpid()}-"
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    left = [
        line.split()[0]
        for line in done.stdout.splitlines()
        if line.strip() and line.startswith(f"kf-{prefix}")
    ]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "kubefence.dataplane.netns._server" in cmdline and f"/{prefix}" in cmdline:
            left.append(f"server process {entry.name}")
    return left


@pytest.fixture(scope="session", autouse=True)
def _no_sandbox_leaks() -> Iterator[None]:
    """After the whole session, no namespace or server of the suite's sandboxes may remain."""
    yield
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return
    left = _leftovers()
    assert not left, f"sandboxes left behind: {left}"


@pytest.fixture
def sandbox_names() -> Iterator[list[str]]:
    """Names registered here are taken down after the test, even if it failed."""
    names: list[str] = []
    yield names
    for name in names:
        down(name)


@pytest.fixture
def make_sandbox(sandbox_names: list[str]) -> SandboxMaker:
    """``make_sandbox(inventory, settings=...)`` brings a uniquely named sandbox up."""

    def make(inventory: Inventory, *, settings: Settings = DEFAULT_SETTINGS) -> Sandbox:
        name = unique_name()
        sandbox_names.append(name)
        return Sandbox.up(inventory, name=name, settings=settings)

    return make


def confirmed(sandbox: Sandbox, result: ProbeResult, expected: bool) -> bool | None:
    """The probe's verdict, re-probed with a long timeout when it timed out where the
    prediction says allowed (a loaded machine can be slower than the short test timeout)."""
    if result.reachable is False and expected and result.outcome is Outcome.TIMEOUT:
        return sandbox.confirm([result])[0].reachable
    return result.reachable


QUICKSTART_PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: test}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, namespace: test, labels: {app: nginx}}
spec:
  containers:
  - name: nginx
    image: nginx
    ports:
    - {name: http, containerPort: 80}
    - {name: dns, containerPort: 53, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: test, labels: {app: nginx}}
spec: {containers: [{name: client, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: busybox, namespace: default}
spec: {containers: [{name: busybox, image: busybox}]}
"""

# A policy that isolates no pod: with it stored, the agent's start holds pods (any policy may
# select a pod it has not planned yet).
SELECTS_NOTHING = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: selects-nothing, namespace: test}
spec:
  podSelector: {matchLabels: {app: nobody}}
  policyTypes: [Ingress]
"""

ALLOW_POLICY = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-policy, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: nginx}}
"""

DENY_ALL_INGRESS = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: test}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""
