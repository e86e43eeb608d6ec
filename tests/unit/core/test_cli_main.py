"""The CLI entry point: exit codes per error family, and no traceback on unexpected errors."""

from __future__ import annotations

import argparse

import pytest

from kubefence.cli import main as cli_main
from kubefence.errors import EnvironmentProblem, InputError, KubefenceError


def _run_raising(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    def fake_parse(self: argparse.ArgumentParser, argv: object = None) -> argparse.Namespace:
        def run(args: argparse.Namespace) -> int:
            raise exc

        return argparse.Namespace(_run=run)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", fake_parse)
    code = cli_main.main([])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InputError("bad"), 2),
        (EnvironmentProblem("no nft"), 3),
        (KubefenceError("failed"), 1),
        (RuntimeError("boom"), 70),
    ],
)
def test_exit_code_per_error_family(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
) -> None:
    """Input errors exit 2, environment problems 3, other kubefence errors 1, bugs 70."""
    monkeypatch.delenv("KUBEFENCE_DEBUG", raising=False)
    got, err = _run_raising(monkeypatch, exc, capsys)
    assert got == code
    assert "Traceback" not in err
    assert err.startswith("kubefence: ")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown subcommand exits 2 with a usage message, like any other usage error."""
    with pytest.raises(SystemExit) as info:
        cli_main.main(["no-such-command"])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_every_command_module_is_named_after_its_command() -> None:
    """Lazy loading finds a command by module name, so each module's NAME must equal it."""
    names = cli_main._command_names()
    assert "validate" in names
    for name in names:
        assert name == cli_main._load_command(name).NAME


def test_running_one_command_imports_only_that_command() -> None:
    """`kubefence validate` does not import other commands or numpy (fast start-up)."""
    import subprocess
    import sys

    code = (
        "import sys; from kubefence.cli.main import main; "
        "rc = main(['validate', '-f', 'examples/quickstart']); "
        "print(sorted(m for m in sys.modules if m.startswith('kubefence.cli.commands.'))); "
        "print('numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-2] == "['kubefence.cli.commands.validate']"
    assert out[-1] == "False"
