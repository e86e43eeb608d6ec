"""How the walk-through looks: the step headers, each check with its prediction and what was
observed, and the final table, in optional ANSI colour.

Why this module exists: the output is what ``make demo`` shows and what the end-to-end tests
read (the Summary table), so its wording lives in one place, apart from the story and the runner.
Predictions are explained by ``cli._render_decision``, exactly as ``kubefence explain`` does.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from kubefence.api import Inventory
from kubefence.cli._render_decision import render_text
from kubefence.cli._tutorial._results import Row, TutorialResult
from kubefence.cli._tutorial._script import Action, Step, Verb, kubectl_command

__all__ = [
    "NOT_ENFORCED",
    "Console",
    "render_action",
    "render_banner",
    "render_check",
    "render_step_head",
    "render_table",
    "stdout_is_tty",
    "verdict_word",
]

NOT_ENFORCED = "NOT ENFORCED — predictions only"


class Console:
    """Where the tutorial writes, with ANSI colour only when asked (``--no-color``, not a TTY
    and ``NO_COLOR`` turn it off in the command)."""

    _CODES: Mapping[str, str] = {
        "bold": "1",
        "dim": "2",
        "green": "32",
        "red": "31",
        "yellow": "33",
        "cyan": "36",
    }

    def __init__(self, stream: TextIO, *, color: bool) -> None:
        self.stream = stream
        self.color = color

    def paint(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(self._CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def verdict_word(allowed: bool | None) -> str:
    if allowed is None:
        return "?"
    return "allowed" if allowed else "denied"


def render_banner(console: Console, reason: str | None) -> None:
    text = NOT_ENFORCED + (f" ({reason})" if reason else "")
    console.line(console.paint(text, "bold", "yellow"))


def render_step_head(console: Console, step: Step, *, total: int) -> None:
    console.line()
    title = f"Step {step.label}/{total}: {step.title}"
    console.line(console.paint(f"── {title} " + "─" * max(0, 72 - len(title)), "bold", "cyan"))
    console.line(step.intro)


def render_action(
    console: Console,
    action: Action,
    directory: Path,
    output: Sequence[str] | None = None,
    *,
    command: str = "",
) -> None:
    """The command of one action (``command``, else the action's own; with the policy's YAML
    when the step shows it) and, on a cluster, what kubectl printed."""
    console.line()
    note = console.paint(f"  # {action.note}", "dim") if action.note else ""
    console.line(console.paint(f"$ {command or action.display()}", "bold") + note)
    if action.show_yaml and action.verb is Verb.APPLY:
        text = (directory / action.file).read_text(encoding="utf-8")
        for yaml_line in text.rstrip("\n").splitlines():
            console.line(console.paint(f"    {yaml_line}", "dim"))
    for text in output or ():
        console.line(text)


def render_check(console: Console, row: Row, inventory: Inventory) -> None:
    check = row.check
    console.line()
    console.line(console.paint(f"$ {kubectl_command(check, inventory)}", "bold"))
    console.line(console.paint(f"  # {check.connection}: {check.note}", "dim"))
    colour = "green" if row.predicted else "red"
    verdict, *because = render_text(row.decision).splitlines()
    console.line(f"  kubefence predicts: {console.paint(verdict, 'bold', colour)}")
    for text in because:
        console.line(f"  {text}")
    observation = row.observation
    if observation is None:
        return
    console.line(f"  observed ({observation.command}):")
    for text in observation.lines or ("(no output)",):
        console.line(console.paint(f"    {text}", "dim"))
    if row.agrees:
        console.line(console.paint("  ✓ as predicted", "green"))
    else:
        console.line(
            console.paint(
                f"  ✗ MISMATCH: predicted {verdict_word(row.predicted)}, "
                f"observed {verdict_word(observation.allowed)}",
                "bold",
                "red",
            )
        )


def _table_cells(row: Row) -> tuple[str, str, str, str]:
    observed = "not enforced" if row.observation is None else verdict_word(row.observation.allowed)
    return (row.step, row.check.connection, verdict_word(row.predicted), observed)


def render_table(console: Console, result: TutorialResult) -> None:
    console.line()
    console.line(console.paint("Summary", "bold"))
    header = ("STEP", "CONNECTION", "EXPECTED", "OBSERVED")
    cells = [_table_cells(row) for row in result.rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(3)]

    def fmt(values: tuple[str, str, str, str]) -> str:
        padded = [v.ljust(w) for v, w in zip(values[:3], widths, strict=True)]
        return "  ".join([*padded, values[3]])

    console.line(fmt(header))
    for row, values in zip(result.rows, cells, strict=True):
        text = fmt(values)
        console.line(text if row.agrees else console.paint(f"{text}  ✗ MISMATCH", "bold", "red"))
    if not result.enforced:
        return
    count = len(result.mismatches)
    if count:
        console.line(
            console.paint(f"{count} observed result(s) differ from the prediction", "bold", "red")
        )
    else:
        console.line(
            console.paint(f"all {len(result.rows)} observed results match the prediction", "green")
        )


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
