"""Entry point of ``kubefence`` and ``kubectl-fence``: argument parsing and exit codes.

Why this module exists: one place maps the exception tree to exit codes (0 ok, 1 a check failed,
2 invalid input or usage, 3 environment problem) and guarantees that no input ends in a Python
traceback. Each subcommand lives in its own module under ``kubefence.cli.commands`` and is
discovered here, so commands can be added without touching this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from kubefence.errors import EnvironmentProblem, InputError, KubefenceError

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ENVIRONMENT", "EXIT_INPUT", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERNAL = 70  # a bug in kubefence: reported without a traceback unless KUBEFENCE_DEBUG=1


class CommandModule(Protocol):
    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_INPUT)


def _command_names() -> list[str]:
    """Subcommand module names, found without importing them (module name == command NAME)."""
    import kubefence.cli.commands as package

    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def _load_command(name: str) -> CommandModule:
    module = importlib.import_module(f"kubefence.cli.commands.{name}")
    return cast(CommandModule, module)


def _requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (its first positional word), if it is one."""
    for word in argv:
        if word.startswith("-"):
            return None  # a global option (e.g. --help) first: build the full parser
        return word if word in _command_names() else None
    return None


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that subcommand is imported and registered, so
    a command does not pay for importing every other command's dependencies (numpy, ...)."""
    parser = _Parser(
        prog="kubefence",
        description="Kubernetes NetworkPolicy, exactly: validate, explain, compute reachability, "
        "and enforce it on real packets.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in [only] if only is not None else _command_names():
        module = _load_command(name)
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_requested_command(words))
    args = parser.parse_args(words)
    run = cast(Callable[[argparse.Namespace], int], args._run)
    try:
        return run(args)
    except InputError as exc:
        print(f"kubefence: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except EnvironmentProblem as exc:
        print(f"kubefence: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KubefenceError as exc:
        print(f"kubefence: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        print("kubefence: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # no input may end in a traceback; this is a bug report instead
        if os.environ.get("KUBEFENCE_DEBUG"):
            raise
        print(
            f"kubefence: internal error ({type(exc).__name__}: {exc}); this is a bug, please "
            "report it with the input (rerun with KUBEFENCE_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
