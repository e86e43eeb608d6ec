"""Manifests from files, directories (recursive) and stdin, as ``kubectl -f`` reads them.

Why this module exists: it is the only place that touches the file system for manifests. It
expands paths (directories recursively, ``.yaml``/``.yml``/``.json`` in sorted order, ``-`` for
stdin), decodes and parses every file (``_yaml``), and hands all documents to
``api.build_inventory`` at once, so that every problem of the whole input set, from unreadable
files to invalid fields, is reported together and nothing is half-loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import BinaryIO

from kubefence._collector import collector_paused
from kubefence.api import Document, Inventory, build_inventory
from kubefence.errors import FieldError, InputError
from kubefence.sources._yaml import decode_bytes, parse_text

__all__ = ["STDIN", "expand_paths", "load_paths", "read_documents"]

STDIN = "-"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 256 * 1024 * 1024  # a manifest set bigger than this is a mistake


def expand_paths(paths: Sequence[str]) -> tuple[list[str], list[FieldError]]:
    """Files to read, in order: each path as given, directories expanded recursively (sorted,
    manifest suffixes only, hidden entries skipped); problems for missing or empty paths."""
    files: list[str] = []
    problems: list[FieldError] = []
    seen: set[str] = set()
    for path in paths:
        if path == STDIN:
            files.append(path)
            continue
        if os.path.isdir(path):
            found = _walk(path)
            if not found:
                problems.append(
                    FieldError(
                        "directory holds no manifests (.yaml, .yml or .json files)", file=path
                    )
                )
        elif os.path.exists(path):
            found = [path]
        else:
            problems.append(FieldError("no such file or directory", file=path))
            continue
        for name in found:
            real = os.path.realpath(name)
            if real not in seen:  # the same file twice would duplicate every object
                seen.add(real)
                files.append(name)
    return files, problems


def _walk(directory: str) -> list[str]:
    found: list[str] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            os.path.join(root, n)
            for n in sorted(names)
            if n.endswith(MANIFEST_SUFFIXES) and not n.startswith(".")
        )
    return found


def _read(file: str, stdin: BinaryIO | None) -> bytes | FieldError:
    try:
        if file == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(MAX_FILE_BYTES + 1)
        else:
            with open(file, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return FieldError(f"cannot read: {exc.strerror or exc}", file=file)
    if len(data) > MAX_FILE_BYTES:
        return FieldError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=file)
    return data


def read_documents(
    paths: Sequence[str], *, stdin: BinaryIO | None = None
) -> tuple[list[Document], list[FieldError]]:
    """Every document of every file named by ``paths``, and the problems met while reading."""
    if not paths:
        raise InputError("no input: name files, directories or '-' (stdin) with -f")
    files, problems = expand_paths(paths)
    documents: list[Document] = []
    stdin_read = False
    for file in files:
        if file == STDIN:
            if stdin_read:
                continue  # '-' twice: stdin can only be read once
            stdin_read = True
        data = _read(file, stdin)
        if isinstance(data, FieldError):
            problems.append(data)
            continue
        text = decode_bytes(data, file=file)
        if isinstance(text, FieldError):
            problems.append(text)
            continue
        found, file_problems = parse_text(text, file=file)
        documents.extend(found)
        problems.extend(file_problems)
    return documents, problems


def load_paths(
    paths: Sequence[str], *, default_namespace: str = "default", stdin: BinaryIO | None = None
) -> Inventory:
    """Load and validate manifests from files, directories and ``-`` (stdin).

    Raises ``kubefence.ValidationError`` listing every problem of the whole input set.
    """
    with collector_paused():
        documents, problems = read_documents(paths, stdin=stdin)
        return build_inventory(documents, default_namespace=default_namespace, problems=problems)
