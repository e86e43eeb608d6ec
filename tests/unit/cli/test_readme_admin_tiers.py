"""The README's admin-tier example shows what the commands print today (no drifting docs)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from kubefence.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def _session() -> list[tuple[str, str]]:
    """(command, output) pairs of the console block under the admin-tiers heading."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Admin tiers: rules a tenant cannot undo") :]
    block = section[section.index("```console\n") + 11 :]
    block = block[: block.index("```")]
    parts = re.split(r"^\$ (.*)\n", block, flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))


SESSION = _session()


@pytest.mark.parametrize(("command", "output"), SESSION, ids=[c for c, _ in SESSION])
def test_readme_admin_tier_example_is_the_real_output(
    command: str,
    output: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each `$ kubefence ...` line of the README's admin-tier example prints the text below it."""
    monkeypatch.chdir(ROOT)
    argv = shlex.split(command)
    assert argv[0] == "kubefence"
    assert main(argv[1:]) == 0
    assert capsys.readouterr().out == output


def test_the_example_session_has_three_commands() -> None:
    """The parser found the block (a renamed heading would otherwise pass with no cases)."""
    assert [c.split()[1] for c, _ in SESSION] == ["explain", "explain", "matrix"]
