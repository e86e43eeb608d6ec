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
