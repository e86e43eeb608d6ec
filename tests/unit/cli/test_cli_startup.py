"""The CLI imports only what the command it runs needs.

Why this test exists: most of a short command's time is start-up, and start-up is imports.
``kubefence --help`` must not import numpy, yaml, the API models or any analysis layer; each
command imports its own dependencies when it runs, and no more (``validate`` no numpy,
``matrix`` no data plane or audit). The checks read ``sys.modules`` in a fresh interpreter,
so they pin the laziness itself rather than a timing a shared machine could not hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = str(ROOT / "examples" / "quickstart")

# Every layer below the CLI, and the third-party modules with a real import cost.
HEAVY = (
    "numpy",
    "yaml",
    "kubefence.api",
    "kubefence.semantics",
    "kubefence.sources",
    "kubefence.engine",
    "kubefence.audit",
    "kubefence.dataplane",
    "kubefence.report",
    "kubefence.cluster",
    "kubefence.verify",
    "kubefence.cli._tutorial",
)


def _loaded_after(statement: str) -> set[str]:
    """The modules of ``HEAVY`` (and their submodules) imported by ``statement`` in a fresh
    interpreter; ``SystemExit`` (``--help``) ends the statement normally."""
    code = (
        "import sys, json, contextlib, io\n"
        "out, err = contextlib.redirect_stdout, contextlib.redirect_stderr\n"
        "with out(io.StringIO()), err(io.StringIO()):\n"
        "    try:\n"
        f"        {statement}\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted({h for h in heavy for m in sys.modules "
        "if m == h or m.startswith(h + '.')})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _main(*words: str) -> str:
    return f"from kubefence.cli.main import main; main({list(words)!r})"


def test_importing_the_entry_point_imports_nothing_heavy() -> None:
    assert _loaded_after("import kubefence.cli.main") == set()


def test_import_kubefence_imports_nothing_heavy() -> None:
    """The public names come on first use (``kubefence.__getattr__``)."""
    assert _loaded_after("import kubefence") == set()


def test_help_imports_nothing_heavy() -> None:
    """``--help`` imports every command module for its NAME and HELP, and nothing else."""
    assert _loaded_after(_main("--help")) == set()


def test_help_lists_every_command() -> None:
    from kubefence.cli.main import _command_names

    result = subprocess.run(
        [sys.executable, "-m", "kubefence", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    for name in _command_names():
        assert f"    {name} " in result.stdout, name


def test_a_usage_error_before_any_command_imports_nothing_heavy() -> None:
    assert _loaded_after(_main("no-such-command")) == set()


@pytest.mark.parametrize(
    ("words", "allowed"),
    [
        (("validate", "-f", QUICKSTART), {"yaml", "kubefence.api", "kubefence.sources"}),
        (
            ("explain", "-f", QUICKSTART, "--from", "default/busybox", "--to", "test/nginx"),
            {"yaml", "kubefence.api", "kubefence.sources", "kubefence.semantics"},
        ),
        (
            ("matrix", "-f", QUICKSTART, "-o", "json"),
            {"numpy", "yaml", "kubefence.api", "kubefence.sources", "kubefence.semantics"}
            | {"kubefence.engine"},
        ),
        (("matrix", "--help"), {"kubefence.api", "kubefence.semantics"}),  # --setting names
    ],
    ids=["validate", "explain", "matrix", "matrix-help"],
)
def test_a_command_imports_only_what_it_uses(words: tuple[str, ...], allowed: set[str]) -> None:
    assert _loaded_after(_main(*words)) <= allowed


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("4", "4")])
def test_blas_threads_default_to_one_unless_chosen(given: str | None, expected: str) -> None:
    """OpenBLAS would start a thread pool on numpy's import, which the engine never uses."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = (
        "import os, contextlib, io\n"
        "from kubefence.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['validate', '-f', 'examples/quickstart'])\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    assert result.stdout.split() == [expected]
