"""Pure pieces of the sandbox CLI and the probe matrix: JSON shape, table, manifest discovery."""

from __future__ import annotations

import argparse
import io
import ipaddress
import sys
from pathlib import Path

import pytest

from kubefence.api import Protocol
from kubefence.cli._render_table import counted
from kubefence.cli.commands import sandbox as command
from kubefence.dataplane.netns import Outcome, ProbeMatrix, ProbeResult, ProbeTarget


def _result(src: str, dst: str, outcome: Outcome) -> ProbeResult:
    target = ProbeTarget(
        src=src,
        dst=dst,
        netns="kf-x-0",
        address=ipaddress.ip_address("198.18.0.2"),
        port=80,
        protocol=Protocol.TCP,
    )
    return ProbeResult(target, outcome, outcome.value)


def _matrix() -> ProbeMatrix:
    a, b, h = "ns/a", "ns/b", "ns/host"
    results = {
        (a, a): _result(a, a, Outcome.CONNECTED),
        (a, b): _result(a, b, Outcome.TIMEOUT),
        (b, a): _result(b, a, Outcome.REFUSED),
        (b, b): _result(b, b, Outcome.CONNECTED),
    }
    unprobed = {(a, h): "ns/host: hostNetwork", (h, a): "ns/host: hostNetwork"}
    unprobed |= {(b, h): "ns/host: hostNetwork", (h, b): "ns/host: hostNetwork"}
    unprobed |= {(h, h): "ns/host: hostNetwork"}
    return ProbeMatrix(
        port="80", protocol=Protocol.TCP, endpoints=(a, b, h), results=results, unprobed=unprobed
    )


def test_probe_json_has_the_matrix_shape_with_unprobed_reasons() -> None:
    """Refused counts as reached, timeout as denied, unprobed pairs are '?' with a reason."""
    shape = _matrix().to_json()
    assert shape["port"] == "80"
    assert shape["protocol"] == "TCP"
    assert shape["endpoints"] == ["ns/a", "ns/b", "ns/host"]
    assert shape["rows"] == ["10?", "11?", "???"]
    assert shape["unprobed"][0] == {
        "from": "ns/a",
        "to": "ns/host",
        "reason": "ns/host: hostNetwork",
    }
    assert len(shape["unprobed"]) == 5


def test_probe_table_lists_cells_and_reasons() -> None:
    """The table shows one row per source and explains every '?'."""
    text = command._table(_matrix())
    lines = text.splitlines()
    assert lines[0] == "TCP/80 (rows: from, columns: to)"
    assert lines[2].split()[:4] == ["ns/a", "1", "0", "?"]
    assert "5 pairs unprobed (?):" in text


def _pod_manifest(name: str) -> str:
    return (
        "apiVersion: v1\nkind: Pod\n"
        f"metadata: {{name: '{name}', namespace: default}}\n"
        "spec: {containers: [{name: c, image: x}]}\n"
    )


def _args(*filenames: str) -> argparse.Namespace:
    return argparse.Namespace(filenames=list(filenames), namespace="default")


def test_manifest_discovery_matches_kubectl_rules(tmp_path: Path) -> None:
    """Directories are walked recursively for .yaml/.yml/.json, hidden entries skipped, sorted;
    the stored copies are the files the inventory was loaded from, each once."""
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("b/2.yml", "a.yaml", "c.json", ".hidden.yaml", ".git/x.yaml"):
        (tmp_path / name).write_text(_pod_manifest(Path(name).stem.strip(".") or "x"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    inventory, contents = command._read_manifests(_args(str(tmp_path), str(tmp_path / "a.yaml")))
    found = [Path(f).relative_to(tmp_path).as_posix() for f, _ in contents]
    assert found == ["a.yaml", "c.json", "b/2.yml"]
    assert [content for _, content in contents] == [
        (tmp_path / name).read_bytes() for name in found
    ]
    assert sorted(pod.name for pod in inventory.pods) == ["2", "a", "c"]


def test_stdin_named_twice_is_stored_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """'-' named twice is read once and stored once, as load_paths reads it once."""
    stdin = io.TextIOWrapper(io.BytesIO(_pod_manifest("s").encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    inventory, contents = command._read_manifests(_args("-", "-"))
    assert contents == [("stdin.yaml", _pod_manifest("s").encode())]
    assert [pod.name for pod in inventory.pods] == ["s"]


def test_counts_are_pluralised() -> None:
    """Summaries say '1 policy' and '2 policies'."""
    assert counted(1, "policy", "policies") == "1 policy"
    assert counted(2, "policy", "policies") == "2 policies"
    assert counted(0, "pod") == "0 pods"
