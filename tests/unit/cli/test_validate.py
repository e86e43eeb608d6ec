"""``kubefence validate``: the summary and exit 0 on valid input, every problem and exit 2 on
invalid input, ``-v`` notes, ``-o json``, and stdin."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from kubefence.cli.main import main

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
VALID = CORPUS / "valid"
INVALID = CORPUS / "invalid"


def test_valid_corpus_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid directory prints the one-line summary with implicit namespaces and skipped kinds."""
    assert main(["validate", "-f", str(VALID)]) == 0
    out = capsys.readouterr().out
    assert out == (
        "ok: 3 namespaces, 5 pods, 2 policies, 1 service "
        "(1 namespace created implicitly; skipped: 1 ConfigMap)\n"
    )


def test_verbose_lists_skipped_kinds_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    """``-v`` adds the skipped kinds and every note after the summary."""
    assert main(["validate", "-v", "-f", str(VALID / "shop.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "skipped: 1 ConfigMap (kubefence does not read this kind)",
        "note: namespace default was created implicitly (referenced by Pod default/client)",
    ]


def test_invalid_input_lists_every_problem_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Problems from several files are printed one per line as file:line: object: path: msg."""
    files = [str(INVALID / "pod-ip-invalid.yaml"), str(INVALID / "v03-port-zero.yaml")]
    assert main(["validate", *[a for f in files for a in ("-f", f)]]) == 2
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(
        f"{files[1]}:12: NetworkPolicy test/p: spec.ingress[0].ports[0]"
        ".port: invalid value 0: must be between 1 and 65535"
    )
    assert lines[0] == (
        f"{files[0]}:12: Pod default/web: status.podIP: invalid value '198.18.0.300': must be a "
        "valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
    )
    assert captured.err == "invalid: 2 problems\n"


def test_json_output_for_problems(capsys: pytest.CaptureFixture[str]) -> None:
    """``-o json`` gives structured problems for scripts."""
    file = str(INVALID / "v04-empty-peer.yaml")
    assert main(["validate", "-o", "json", "-f", file]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "valid": False,
        "problems": [
            {
                "file": file,
                "line": 13,
                "object": "NetworkPolicy test/p",
                "path": "spec.ingress[0].from[1]",
                "message": "must specify a peer: podSelector, namespaceSelector (or both), "
                "or ipBlock",
            }
        ],
    }


def test_json_output_for_a_valid_set(capsys: pytest.CaptureFixture[str]) -> None:
    """``-o json`` on valid input gives counts, implicit namespaces, skipped kinds and notes."""
    assert main(["validate", "-o", "json", "-f", str(VALID)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is True
    assert (document["namespaces"], document["pods"], document["policies"]) == (3, 5, 2)
    assert document["implicitNamespaces"] == ["default"]
    assert document["skipped"] == {"ConfigMap": 1}


def test_stdin_and_namespace_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-f -`` reads stdin and ``-n`` places objects without a namespace."""
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: x}]}"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert main(["validate", "-f", "-", "-n", "team-a", "-v"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 1 namespace, 1 pod, 0 policies (1 namespace created implicitly)")
    assert "referenced by Pod team-a/a" in out


def test_missing_file_is_exit_2_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing path is a listed problem, exit 2."""
    assert main(["validate", "-f", "/nonexistent/kubefence.yaml"]) == 2
    assert capsys.readouterr().out == "/nonexistent/kubefence.yaml: no such file or directory\n"


def test_workloads_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """The workloads example (YAML workloads plus a JSON List of policies) validates."""
    examples = Path(__file__).resolve().parents[3] / "examples" / "workloads"
    assert main(["validate", "-f", str(examples)]) == 0
    assert capsys.readouterr().out == (
        "ok: 1 namespace, 4 pods, 2 policies, 1 service (skipped: 1 ConfigMap)\n"
    )
