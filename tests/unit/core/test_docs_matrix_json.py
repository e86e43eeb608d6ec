"""docs/matrix-json.md shows what ``matrix -o json`` really prints.

Why this test exists: the page is the JSON contract (version 1) scripts rely on; its examples
that need no root are rerun here, so the page and the command cannot drift apart. The sandbox
examples are held by the netns tests, which compare ``sandbox probe`` with ``matrix``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kubefence.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "matrix-json.md"
KEYS_V1 = ["port", "protocol", "endpoints", "rows"]


def documented_output(command: str) -> object:
    """The JSON printed under ``$ command`` in the first code block that shows it."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(re.escape(f"$ {command}\n") + r"(.*?)\n```", text, re.DOTALL)
    assert match is not None, command
    return json.loads(match.group(1))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_the_one_port_example_is_what_matrix_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    command = "kubefence matrix -f examples/quickstart --port 80 -o json"
    printed = run(command.split()[1:], capsys)
    assert printed == documented_output(command)
    assert isinstance(printed, dict)
    assert list(printed) == KEYS_V1


def test_without_port_matrix_prints_a_list_of_version_1_objects(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    printed = run(["matrix", "-f", "examples/multi-tenant", "-o", "json"], capsys)
    assert isinstance(printed, list)
    assert all(list(m) == KEYS_V1 for m in printed)
    labels = [[m["port"], m["protocol"]] for m in printed]
    command = (
        "kubefence matrix -f examples/multi-tenant -o json | jq -c '[.[] | [.port, .protocol]]'"
    )
    shown = json.dumps(labels, separators=(",", ":"))
    assert f"$ {command}\n{shown}\n" in DOC.read_text(encoding="utf-8")
