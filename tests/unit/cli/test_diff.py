"""``kubefence diff``: connections that become allowed or denied, and ``--exit-code``.

Why this module exists: CI jobs run ``diff --exit-code`` on pull requests that edit policies;
the listed changes must be exactly the cells whose verdict differs (checked against the
reference evaluator on random clusters), and the exit code must follow the flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import inventories, policies

from kubefence.api import Inventory, NetworkPolicy
from kubefence.cli.main import main
from kubefence.engine import diff_inventories
from kubefence.semantics import decide

BASE = """\
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80, name: http}]}]}
"""

ALLOW_HTTP = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {}}]
    ports: [{port: http}]
"""

DENY_ALL = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec: {podSelector: {}}
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("allow", BASE + ALLOW_HTTP), ("deny", BASE + DENY_ALL)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        out[name] = path
    return out


def test_diff_lists_closed_connections_with_ports(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Replacing allow-http by deny-all closes client -> web on port 80 only (it was the
    only port open); the table names it with a '-' line."""
    code = main(["diff", "-f", str(files["allow"]), "--against", str(files["deny"])])
    out = capsys.readouterr().out
    assert code == 0
    assert "- deny   default/client -> shop/web  on 80/TCP" in out
    assert "+ allow" not in out


def test_diff_json_and_reverse_direction(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The reverse change opens the same connection; JSON lists it under "allowed"."""
    code = main(["diff", "-f", str(files["deny"]), "--against", str(files["allow"]), "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["changed"] is True
    assert doc["allowed"] == [
        {"from": "default/client", "to": "shop/web", "port": "80", "protocol": "TCP"}
    ]
    assert doc["denied"] == []


def test_exit_code_flag_exits_1_only_on_change(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--exit-code``: 1 when something changed, 0 for identical inputs."""
    changed = main(
        ["diff", "-f", str(files["allow"]), "--against", str(files["deny"]), "--exit-code"]
    )
    same = main(["diff", "-f", str(files["deny"]), "--against", str(files["deny"]), "--exit-code"])
    out = capsys.readouterr().out
    assert (changed, same) == (1, 0)
    assert "no change" in out


def test_diff_reports_pods_in_one_version_only(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A pod that exists only in the new manifests is named, not silently compared."""
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        BASE + DENY_ALL + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: new, namespace: shop}\n"
        "spec: {containers: [{name: c, image: i}]}\n"
    )
    code = main(["diff", "-f", str(files["deny"]), "--against", str(extra), "--exit-code"])
    assert code == 1
    assert "pods only in the new manifests: shop/new" in capsys.readouterr().out


def test_diff_missing_file_exits_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable --against path is an input error (exit 2), not a traceback."""
    code = main(["diff", "-f", str(files["deny"]), "--against", "/nonexistent/x.yaml"])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_diff_refuses_clusters_beyond_the_pod_limit(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the pod limit the diff exits 2 with a message instead of exhausting memory."""
    from kubefence.cli.commands import diff as command

    monkeypatch.setattr(command, "DIFF_MAX_PODS", 1)
    code = main(["diff", "-f", str(files["allow"]), "--against", str(files["deny"])])
    assert code == 2
    assert "too many for a pod-by-pod diff" in capsys.readouterr().err


@given(inventories(max_pods=4, max_policies=2), st.lists(policies("changed"), max_size=1))
def test_diff_equals_reference_verdict_changes(
    old: Inventory, replacement: list[NetworkPolicy]
) -> None:
    """Every listed change, and only those, is a (pair, port class) whose decide() differs."""
    new = Inventory.of(namespaces=old.namespaces, pods=old.pods, policies=replacement)
    diff = diff_inventories(old, new)
    listed = {(c.src, c.dst, c.protocol, c.port): c.allowed for c in diff.changes}
    keys = [p.key for p in old.pods]
    for pc in diff.port_classes:
        for s in keys:
            for d in keys:
                before = decide(old, s, d, port=pc.port, protocol=pc.protocol).allowed
                after = decide(new, s, d, port=pc.port, protocol=pc.protocol).allowed
                key = (s, d, pc.protocol, pc.label)
                if before == after:
                    assert key not in listed
                else:
                    assert listed.get(key) is after
