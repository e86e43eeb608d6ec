"""Entry point of ``kubefence`` and ``kubectl-fence``: argument parsing and exit codes.

Why this module exists: one place maps the exception tree to exit codes (0 ok, 1 a check failed,
2 invalid input or usage, 3 environment problem) and guarantees that no input ends in a Python
traceback. Each subcommand lives in its own module under ``kubefence.cli.commands`` and is
discovered here, so commands can be added without touching this file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Start-up time is this module's budget (``kubefence --help`` well under 0.1 s): it imports only
# what parsing needs. ``typing`` itself is not imported (mypy treats this name as True), the
# errors are imported once a command runs, and each command module imports its own heavy
# dependencies inside the functions that use them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Protocol

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ENVIRONMENT", "EXIT_INPUT", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERNAL = 70  # a bug in kubefence: reported without a traceback unless KUBEFENCE_DEBUG=1


if TYPE_CHECKING:

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
    """Subcommand module names, found without importing them (module name == command NAME):
    the ``.py`` files and packages of ``kubefence.cli.commands`` not starting with ``_``."""
    import kubefence.cli.commands as package

    names = set()
    for directory in package.__path__:
        for entry in os.scandir(directory):
            name, dot, suffix = entry.name.partition(".")
            if name.startswith("_") or not name.isidentifier():
                continue
            if entry.is_dir():
                if os.path.exists(os.path.join(entry.path, "__init__.py")):
                    names.add(name)
            elif dot and suffix == "py":
                names.add(name)
    return sorted(names)


def _load_command(name: str) -> CommandModule:
    module: CommandModule = importlib.import_module(f"kubefence.cli.commands.{name}")
    return module


def _requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (its first positional word), if it is one."""
    for word in argv:
        if word.startswith("-"):
            return None  # a global option (e.g. --help) first: build the full parser
        return word if word in _command_names() else None
    return None


def build_parser(*, only: str | None = None, summary: bool = False) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that subcommand is imported and registered, so
    a command does not pay for importing every other command's dependencies (numpy, ...).

    With ``summary``, every command is registered by name and help line but without its
    arguments: enough for ``kubefence --help`` and for usage errors before a command name, which
    is all the parser is used for when no command is named."""
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
        if not summary:
            module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


# OpenBLAS starts a thread pool when numpy is imported: measured at about 50 ms of a 0.37 s
# ``matrix`` on a 2-core machine (more cores, more threads), for nothing, since the engine's
# numpy work is element-wise and never calls BLAS. One thread unless the user chose otherwise.
_BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault(_BLAS_THREADS, "1")
    words = list(sys.argv[1:] if argv is None else argv)
    command = _requested_command(words)
    parser = build_parser(only=command, summary=command is None)
    args = parser.parse_args(words)
    run: Callable[[argparse.Namespace], int] = args._run
    from kubefence.errors import EnvironmentProblem, InputError, KubefenceError

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
