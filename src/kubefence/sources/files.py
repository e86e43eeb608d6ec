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
from collections.abc import Callable, Sequence
from typing import BinaryIO

from kubefence._collector import collector_paused
from kubefence.errors import FieldError, InputError
from kubefence.sources._cache import InventoryCache

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from kubefence.api import Document, Inventory

__all__ = ["STDIN", "expand_paths", "load_paths", "read_documents"]

STDIN = "-"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 256 * 1024 * 1024  # a manifest set bigger than this is a mistake
_CHUNK_BYTES = 1024 * 1024


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
            data = _read_limited(stdin if stdin is not None else sys.stdin.buffer)
        else:
            with open(file, "rb") as handle:
                data = _read_limited(handle, expected=os.fstat(handle.fileno()).st_size)
    except OSError as exc:
        return FieldError(f"cannot read: {exc.strerror or exc}", file=file)
    if len(data) > MAX_FILE_BYTES:
        return FieldError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=file)
    return data


def _read_limited(stream: BinaryIO, *, expected: int = 0) -> bytes:
    """At most ``MAX_FILE_BYTES + 1`` bytes of ``stream``, in chunks: one ``read`` of that many
    allocates all of it up front (256 MiB for any input, a third of the memory budget of a large
    load). The first read asks for the ``expected`` size (a regular file's), the others for a MiB
    (pipes, stdin, files that grow)."""
    chunks: list[bytes] = []
    size = 0
    want = max(expected + 1, _CHUNK_BYTES)
    while size <= MAX_FILE_BYTES:
        chunk = stream.read(min(want, MAX_FILE_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        want = _CHUNK_BYTES
    return b"".join(chunks)


def _read_inputs(
    paths: Sequence[str], stdin: BinaryIO | None
) -> tuple[list[FieldError], list[tuple[str, bytes | FieldError]]]:
    """The problems of finding the files named by ``paths``, then each file's bytes (or the
    problem reading it), in order; stdin is read at most once."""
    if not paths:
        raise InputError("no input: name files, directories or '-' (stdin) with -f")
    files, problems = expand_paths(paths)
    inputs: list[tuple[str, bytes | FieldError]] = []
    stdin_read = False
    for file in files:
        if file == STDIN:
            if stdin_read:
                continue  # '-' twice: stdin can only be read once
            stdin_read = True
        inputs.append((file, _read(file, stdin)))
    return problems, inputs


def _parse_inputs(
    problems: list[FieldError], inputs: Sequence[tuple[str, bytes | FieldError]]
) -> tuple[list[Document], list[FieldError]]:
    """Decode and parse every input; problems stay in the order of the files."""
    from kubefence.sources._yaml import decode_bytes, parse_text  # not needed on a cache hit

    documents: list[Document] = []
    for file, data in inputs:
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


def read_documents(
    paths: Sequence[str], *, stdin: BinaryIO | None = None
) -> tuple[list[Document], list[FieldError]]:
    """Every document of every file named by ``paths``, and the problems met while reading."""
    return _parse_inputs(*_read_inputs(paths, stdin))


def load_paths(
    paths: Sequence[str],
    *,
    default_namespace: str = "default",
    stdin: BinaryIO | None = None,
    cache: bool = False,
    keep: Callable[[list[Document]], list[Document]] | None = None,
) -> Inventory:
    """Load and validate manifests from files, directories and ``-`` (stdin).

    With ``cache``, an inventory loaded before from the same bytes under the same names (and
    by the same code) is reused, and a new one is stored (``sources._cache``; the CLI turns
    this on, ``KUBEFENCE_CACHE=off`` turns it off).

    ``keep``, when given, chooses which parsed documents are loaded (``kubefence report`` sets
    later definitions of a NetworkPolicy aside as findings). An inventory is stored only when
    ``keep`` kept every document, and a cache hit does not call it: so ``keep`` must keep every
    document of any input the loader accepts without problems.

    Raises ``kubefence.ValidationError`` listing every problem of the whole input set.
    """
    from kubefence.api import build_inventory

    with collector_paused():
        if not cache:
            documents, problems = read_documents(paths, stdin=stdin)
            return build_inventory(
                documents if keep is None else keep(documents),
                default_namespace=default_namespace,
                problems=problems,
            )
        problems, inputs = _read_inputs(paths, stdin)
        readable = [(f, d) for f, d in inputs if not isinstance(d, FieldError)]
        clean = not problems and len(readable) == len(inputs)
        store = InventoryCache.from_environment() if clean else InventoryCache(None)
        key = ""
        if store.enabled:
            key = store.key(readable, default_namespace=default_namespace)
            cached = store.get(key)
            if cached is not None:
                return cached
        documents, problems = _parse_inputs(problems, inputs)
        kept = documents if keep is None else keep(documents)
        inventory = build_inventory(kept, default_namespace=default_namespace, problems=problems)
        if store.enabled and len(kept) == len(documents):
            store.put(key, inventory)
        return inventory
