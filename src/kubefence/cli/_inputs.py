"""The kubectl-like input options every command shares: ``-f`` (repeatable), ``-n``, ``-v``.

Why this module exists: commands must read manifests the same way (files, directories, ``-``
for stdin; the same default namespace rule), so they share one definition of the options.
"""

from __future__ import annotations

import argparse
import dataclasses

from kubefence.api import Inventory
from kubefence.errors import InputError
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = [
    "add_input_arguments",
    "add_settings_arguments",
    "inventory_from_args",
    "settings_from_args",
]


def add_input_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        metavar="PATH",
        required=required,
        help="manifest file, directory (recursive: .yaml, .yml, .json) or '-' for stdin; "
        "repeatable",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace for objects that name none (default: %(default)s)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also list skipped kinds and notes"
    )


def inventory_from_args(args: argparse.Namespace) -> Inventory:
    """Load and validate the manifests named by ``-f``; raises ValidationError (exit 2)."""
    from kubefence.sources.files import load_paths

    return load_paths(list(args.filenames or []), default_namespace=args.namespace)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--setting NAME=true|false`` (repeatable): the implementation-defined choices."""
    names = ", ".join(f.name for f in dataclasses.fields(Settings))
    parser.add_argument(
        "--setting",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=BOOL",
        help=f"change an implementation-defined behaviour (see README); NAME is one of {names}",
    )


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` named by ``--setting`` options; unknown names or values are exit 2."""
    known = {f.name for f in dataclasses.fields(Settings)}
    chosen: dict[str, bool] = {}
    for item in getattr(args, "settings", None) or []:
        name, sep, value = str(item).partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise InputError(
                f"--setting {item!r}: expected NAME=true|false with NAME one of "
                f"{', '.join(sorted(known))}"
            )
        word = value.strip().lower()
        if word not in _TRUE | _FALSE:
            raise InputError(f"--setting {item!r}: the value must be true or false")
        chosen[name] = word in _TRUE
    return dataclasses.replace(DEFAULT_SETTINGS, **chosen)
