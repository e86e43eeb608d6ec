"""The runner of ``kubefence tutorial``: replays the steps, predicts, observes, compares.

Why this module exists: it is the loop alone (which steps to show, the cluster state of each,
the prediction by the reference evaluator, the observation through an ``Observer``, one
``Row`` per check) without the story's data (``_script``) or its wording (``_render``).

How ``--step N`` works: every step builds on the cluster state of the steps before it, so the
manifests of steps 1..N-1 are applied silently and only step N is shown and checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kubefence.cli._tutorial._manifests import ManifestState
from kubefence.cli._tutorial._render import (
    Console,
    render_action,
    render_banner,
    render_check,
    render_step_head,
    render_table,
)
from kubefence.cli._tutorial._results import (
    LiveObserver,
    Observation,
    Observer,
    Row,
    TutorialResult,
)
from kubefence.cli._tutorial._script import STEPS, Step
from kubefence.errors import InputError
from kubefence.semantics import DEFAULT_SETTINGS, Settings, decide

__all__ = ["check_step", "run_tutorial"]


def check_step(only_step: int | None, *, steps: Sequence[Step] = STEPS) -> list[int]:
    """The step numbers; raises ``InputError`` (exit 2) when ``only_step`` is none of them."""
    numbers = sorted({s.number for s in steps})
    if only_step is not None and only_step not in numbers:
        raise InputError(f"--step must be one of {', '.join(map(str, numbers))}")
    return numbers


def run_tutorial(
    directory: Path,
    *,
    console: Console,
    observer: Observer | None,
    not_enforced_reason: str | None = None,
    only_step: int | None = None,
    settings: Settings = DEFAULT_SETTINGS,
    steps: Sequence[Step] = STEPS,
) -> TutorialResult:
    """Replay ``steps`` (all, or only ``only_step`` on the state of the steps before it).

    With ``observer`` None nothing is enforced: the output says so and why
    (``not_enforced_reason``), and the exit code is 0. The observer is not closed here."""
    live = observer if isinstance(observer, LiveObserver) else None
    steps = [step for step in steps if live is not None or not step.cluster_only]
    numbers = check_step(only_step, steps=steps)
    total = numbers[-1] if numbers else 0
    if observer is None:
        render_banner(console, not_enforced_reason)
    else:
        console.line(console.paint(f"Enforced on real packets: {observer.description}", "dim"))
    state = ManifestState(directory)
    rows: list[Row] = []
    for step in steps:
        if only_step is not None and step.number > only_step:
            break
        shown = only_step is None or step.number == only_step
        if shown:
            render_step_head(console, step, total=total)
        for action in step.actions:
            if action.cluster_only and live is None:
                continue
            state.run(action)
            output = live.perform(action, directory) if live is not None else None
            if shown:
                command = live.display(action) if live is not None else ""
                render_action(console, action, directory, output, command=command)
        if not shown:
            continue
        inventory = state.inventory()
        if observer is not None:
            observer.sync(inventory, files=state.paths())
        if live is not None:
            inventory = live.live_inventory()
        checks = [live.resolve(c, inventory) for c in step.checks] if live else step.checks
        decisions = [
            decide(
                inventory,
                check.src,
                check.dst,
                port=check.port,
                protocol=check.protocol,
                settings=settings,
            )
            for check in checks
        ]
        observations: list[Observation | None] = (
            list(observer.observe(checks, inventory))
            if observer is not None
            else [None] * len(checks)
        )
        for check, decision, observation in zip(checks, decisions, observations, strict=True):
            row = Row(step.label, check, decision, observation)
            render_check(console, row, inventory)
            rows.append(row)
    result = TutorialResult(tuple(rows), enforced=observer is not None)
    render_table(console, result)
    if observer is None:
        render_banner(console, not_enforced_reason)
    return result
