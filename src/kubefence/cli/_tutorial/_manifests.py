"""The cluster state of the walk-through, as ``kubectl apply`` and ``kubectl delete`` leave it.

Why this module exists: each step applies or deletes files, and ``--step N`` must rebuild the
state of steps 1..N-1 silently; this is the one bookkeeping of which files are in effect, with
object identity (kind, namespace, name) read from the manifests themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubefence.api import Inventory, ObjectKey
from kubefence.cli._tutorial._script import Action, Verb
from kubefence.errors import InputError
from kubefence.sources.files import load_paths, read_documents

__all__ = ["ManifestState"]


def _object_keys(path: Path) -> frozenset[ObjectKey]:
    documents, problems = read_documents([str(path)])
    if problems:
        details = "; ".join(str(p) for p in problems)
        raise InputError(f"{path}: cannot read the tutorial manifest ({details})")
    return frozenset(key for key in (d.key() for d in documents) if key is not None)


@dataclass(slots=True)
class ManifestState:
    """The files applied so far, in order. Applying a file whose objects replace every object
    of an earlier file (same kind, namespace and name) drops that file, as ``kubectl apply``
    would overwrite the objects; deleting a file removes it."""

    directory: Path
    files: list[str] = field(default_factory=list)

    def run(self, action: Action) -> None:
        if action.cluster_only:
            return
        if action.verb is Verb.DELETE:
            replaced = _object_keys(self.directory / action.file)
            self.files = [f for f in self.files if _object_keys(self.directory / f) != replaced]
            return
        keys = _object_keys(self.directory / action.file)
        self.files = [f for f in self.files if not _object_keys(self.directory / f) <= keys] + [
            action.file
        ]

    def paths(self) -> list[Path]:
        return [self.directory / f for f in self.files]

    def inventory(self) -> Inventory:
        """The validated objects; files are named relative to the current directory when they
        are under it, so explanations point at ``examples/tutorial/...:LINE``."""
        return load_paths([_short_path(p) for p in self.paths()])


def _short_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
