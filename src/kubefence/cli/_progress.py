"""A progress line on stderr for long commands, drawn only for a person watching a terminal.

Why this module exists: ``matrix`` on a large cluster and ``sandbox verify`` run for seconds to
minutes with nothing to show. ``Progress`` draws one self-erasing line on stderr, and only
when stderr is a TTY, the caller did not turn it off (machine output such as ``-o json``), and
the work has already taken ``DELAY`` seconds (so quick runs stay silent): a bar when the amount
of work is known (``total``), otherwise a spinner with the elapsed time, redrawn by a
background thread. Scripts, pipes and CI logs never see it. A dependency such as ``rich``
would replace about 100 lines, so the small helper stays.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType
    from typing import TextIO

__all__ = ["DELAY", "Progress"]

DELAY = 0.5  # seconds of work before anything is drawn
_TICK = 0.1
_SPINNER = "|/-\\"


class Progress:
    """``with Progress("matrix", total=12) as p: ... p.advance(detail="80/TCP")``."""

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        enabled: bool = True,
        stream: TextIO | None = None,
        delay: float | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.detail = ""
        self.stream = stream if stream is not None else sys.stderr
        self.delay = DELAY if delay is None else delay
        self.active = enabled and _is_tty(self.stream)
        self._started = time.monotonic()
        self._drawn = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame = 0

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.active:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()

    def advance(self, steps: int = 1, *, detail: str = "") -> None:
        """``steps`` more units done; ``detail`` names what comes next."""
        self.done += steps
        self.detail = detail
        self._draw()

    def phase(self, detail: str) -> None:
        """Name the current step (indeterminate work)."""
        self.detail = detail
        self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(_TICK):
            self._frame += 1
            self._draw()

    def _draw(self) -> None:
        if not self.active:
            return
        elapsed = time.monotonic() - self._started
        if elapsed < self.delay:
            return
        with self._lock:
            if self._stop.is_set():
                return
            self.stream.write("\r\x1b[K" + self._line(elapsed))
            self.stream.flush()
            self._drawn = True

    def _line(self, elapsed: float) -> str:
        width = _width(self.stream)
        clock = f"{elapsed:5.1f}s"
        detail = f" {self.detail}" if self.detail else ""
        if self.total:
            share = min(1.0, self.done / self.total)
            count = f" {self.done}/{self.total}"
            room = max(10, min(40, width - len(self.label) - len(count) - len(clock) - 20))
            filled = int(share * room)
            bar = "#" * filled + "-" * (room - filled)
            text = f"{self.label} [{bar}]{count} {clock}{detail}"
        else:
            spin = _SPINNER[self._frame % len(_SPINNER)]
            text = f"{self.label} {spin} {clock}{detail}"
        return text[: max(1, width - 1)]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80
    return columns if columns > 0 else 80  # a pseudo-terminal may report no size
