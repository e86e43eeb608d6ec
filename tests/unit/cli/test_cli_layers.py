"""The CLI starts no processes: every ``ip``/``curl``/user command runs in ``dataplane.netns``.

Why this module exists: import-linter forbids ``subprocess``, ``pty`` and ``multiprocessing``
in ``kubefence.cli`` (``pyproject.toml``), but processes can also be spawned through ``os``
(``os.system``, ``os.exec*``, ``os.spawn*``, ``os.popen``, ``os.fork``, ``os.posix_spawn``) or a
module imported by name, which an import contract cannot see. This scans the code (not its
prose: docstrings and comments may mention them) of every module under ``src/kubefence/cli``.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import kubefence.cli

CLI = Path(kubefence.cli.__file__).parent
MODULES = ("subprocess", "pty", "multiprocessing")
OS_SPAWNING = re.compile(r"^(system|exec\w*|spawn\w*|popen|fork\w*|posix_spawn\w*)$")


def process_spawning(source: str) -> list[str]:
    """Uses of process-spawning code in ``source``: the modules by name (also as a string, as
    ``importlib.import_module`` would take it) and ``os``'s spawning functions, as ``os.NAME``
    or imported by ``from os import``."""
    found: list[str] = []
    words: list[str] = []  # the code tokens of the current statement
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NEWLINE:
            words = []
            continue
        if token.type in (tokenize.COMMENT, tokenize.NL):
            continue
        text, line = token.string, token.start[0]
        named = token.type == tokenize.NAME and text in MODULES
        quoted = token.type == tokenize.STRING and text.strip("'\"") in MODULES
        if named or quoted:
            found.append(f"{line}: {text}")
        elif (
            token.type == tokenize.NAME
            and OS_SPAWNING.match(text)
            and (words[-2:] == ["os", "."] or words[:3] == ["from", "os", "import"])
        ):
            found.append(f"{line}: os.{text}")
        words.append(text)
    return found


def test_no_module_of_the_cli_spawns_processes() -> None:
    modules = sorted(CLI.rglob("*.py"))
    assert len(modules) > 10  # the scan really reads the package
    offenders = {
        str(path.relative_to(CLI)): hits
        for path in modules
        if (hits := process_spawning(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_scan_finds_every_spelling_and_ignores_prose() -> None:
    """The scanner itself: each way to spawn is found; words in docstrings are not."""
    assert process_spawning("import subprocess\n") == ["1: subprocess"]
    assert process_spawning("from pty import spawn\n") == ["1: pty"]
    assert process_spawning("import os\nos.system('ls')\n") == ["2: os.system"]
    assert process_spawning("import os\nos.execvp('ls', ['ls'])\n") == ["2: os.execvp"]
    assert process_spawning("import os\nos.posix_spawnp('ls', [], {})\n") == ["2: os.posix_spawnp"]
    assert process_spawning("from os import (\n    spawnlp,\n)\n") == ["2: os.spawnlp"]
    assert process_spawning("m = __import__('subprocess')\n") == ["1: 'subprocess'"]
    prose = '"""Runs no subprocess; os.system is for others."""\n# pty: never\nx = "empty"\n'
    assert process_spawning(prose) == []
    assert process_spawning("from os import environ\nfork = 1\nexecute = os.path\n") == []
