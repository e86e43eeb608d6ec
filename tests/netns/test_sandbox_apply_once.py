"""``kubefence sandbox apply`` parses its manifests once, and restarts the server only when needed.

Why this module exists: ``apply`` used to parse both the new manifests and the sandbox's stored
copy of the old ones, only to learn what the running server serves; it now reads that from the
server's own spec. Here (root) the whole command runs in-process with ``load_paths`` counted:
one parse per apply; a policy-only change keeps the server (same process), a new served port
restarts it and the port answers; a later ``probe`` (a new attach, which does read the stored
copy) sees what was applied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.netns.conftest import ALLOW_POLICY, QUICKSTART_PODS, unique_name

import kubefence.sources.files as files
from kubefence.cli.main import main
from kubefence.dataplane.netns import down, status

pytestmark = pytest.mark.netns

EXTRA_POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: extra, namespace: default, labels: {app: extra}}
spec:
  containers:
  - {name: x, image: busybox, ports: [{containerPort: 7000}]}
"""


def test_apply_parses_once_and_restarts_the_server_only_for_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    name = unique_name()
    manifests = tmp_path / "m.yaml"
    manifests.write_text(QUICKSTART_PODS)
    loads: list[list[str]] = []
    real = files.load_paths

    def counted(paths: Any, **kwargs: Any) -> Any:
        loads.append(list(paths))
        return real(paths, **kwargs)

    monkeypatch.setattr(files, "load_paths", counted)
    try:
        assert main(["sandbox", "up", "-f", str(manifests), "--name", name]) == 0
        server = status(name).server
        assert server is not None
        loads.clear()

        manifests.write_text(QUICKSTART_PODS + ALLOW_POLICY)  # policies only
        assert main(["sandbox", "apply", "-f", str(manifests), "--name", name]) == 0
        assert "1 policy applied atomically" in capfd.readouterr().out
        assert loads == [[str(manifests)]]  # the new manifests, not the stored copy
        assert status(name).server == server  # the same server process serves on

        loads.clear()
        manifests.write_text(QUICKSTART_PODS + ALLOW_POLICY + EXTRA_POD)  # a new served port
        assert main(["sandbox", "apply", "-f", str(manifests), "--name", name]) == 0
        assert "1 pod added" in capfd.readouterr().out
        assert loads == [[str(manifests)]]
        assert status(name).server != server

        assert main(["sandbox", "probe", "--name", name, "--port", "7000", "-o", "json"]) == 0
        shape = json.loads(capfd.readouterr().out)
        column = shape["endpoints"].index("default/extra")
        row = shape["endpoints"].index("test/nginx")
        assert shape["rows"][row][column] == "1"  # served by the restarted server
        assert len(loads) == 2  # probe attaches with the stored copy
    finally:
        down(name)
