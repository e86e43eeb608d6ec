"""What the walk-through produces: observations of real packets, rows, the result, the observer.

Why this module exists: the runner, the rendering and the data planes all speak these types;
holding them apart keeps those three modules free of each other (the runner drives the other
two, which only need these). ``Observer`` is the seam unit tests use to run without root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol as TypingProtocol
from typing import runtime_checkable

from kubefence.api import Inventory
from kubefence.cli._tutorial._script import Action, Check
from kubefence.semantics import Decision

__all__ = ["LiveObserver", "Observation", "Observer", "Row", "TutorialResult"]


@dataclass(frozen=True, slots=True)
class Observation:
    """What a user saw: ``allowed`` None when the result says neither (an unexpected error)."""

    allowed: bool | None
    command: str  # what actually ran, e.g. "curl -sS -m 1 http://198.18.0.2/ from test/busybox ..."
    lines: tuple[str, ...]  # the first lines of its output, as the user sees them


class Observer(TypingProtocol):
    """A data plane the tutorial replays on. ``sync`` brings it to the cluster state of a step
    (first call: create it), ``observe`` tries the connections, ``close`` removes everything."""

    description: str

    def sync(self, inventory: Inventory, *, files: Sequence[Path]) -> None: ...

    def observe(self, checks: Sequence[Check], inventory: Inventory) -> list[Observation]: ...

    def close(self) -> None: ...


@runtime_checkable
class LiveObserver(Observer, TypingProtocol):
    """An observer that is a cluster of its own (the sandbox cluster): it runs each action's
    kubectl command (``perform`` returns what kubectl printed; ``display`` is the command with
    the cluster's own values filled in), predictions are made from what
    its API server stores (``live_inventory``), and ``resolve`` maps a check's destination to
    the pod that really serves it there (e.g. kube-system/kube-dns to the DNS addon's pod)."""

    def perform(self, action: Action, directory: Path) -> list[str]: ...

    def display(self, action: Action) -> str: ...

    def live_inventory(self) -> Inventory: ...

    def resolve(self, check: Check, inventory: Inventory) -> Check: ...


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the final table."""

    step: str  # the step's label, e.g. "4b"
    check: Check
    decision: Decision
    observation: Observation | None

    @property
    def predicted(self) -> bool:
        return self.decision.allowed

    @property
    def agrees(self) -> bool:
        """True when not enforced, or when what was observed is what was predicted."""
        return self.observation is None or self.observation.allowed == self.predicted


@dataclass(frozen=True, slots=True)
class TutorialResult:
    rows: tuple[Row, ...]
    enforced: bool

    @property
    def mismatches(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if not row.agrees)

    @property
    def exit_code(self) -> int:
        return 1 if self.mismatches else 0
