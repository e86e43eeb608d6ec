"""The kubectl-like input options every command shares: ``-f`` (repeatable), ``-n``, ``-v``.

Why this module exists: commands must read manifests the same way (files, directories, ``-``
for stdin; the same default namespace rule), so they share one definition of the options.
"""

from __future__ import annotations

import argparse

from kubefence.api import Inventory

__all__ = ["add_input_arguments", "inventory_from_args"]


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
