"""The progress line: drawn on a terminal only, never in pipes, logs or machine output.

Why this module exists: a progress bar that leaks into a redirected stderr or into ``-o json``
runs breaks scripts; one that never shows is useless. A pseudo-terminal (``os.openpty``)
stands in for the person watching.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from kubefence.cli import _progress
from kubefence.cli._progress import Progress
from kubefence.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def tty() -> Iterator[tuple[TextIO, int]]:
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w")
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def _read(master: int) -> str:
    os.set_blocking(master, False)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_bar_on_a_terminal(tty: tuple[TextIO, int]) -> None:
    stream, master = tty
    with Progress("work", total=4, stream=stream, delay=0) as p:
        for _ in range(4):
            p.advance(detail="step")
    out = _read(master)
    assert "work [" in out
    assert "4/4" in out
    assert "#" * 10 in out
    assert out.endswith("\r\x1b[K")  # the line erases itself at the end


def test_spinner_for_unknown_amounts(tty: tuple[TextIO, int]) -> None:
    stream, master = tty
    with Progress("verify", stream=stream, delay=0) as p:
        p.phase("probing")
        time.sleep(0.35)
    out = _read(master)
    assert "verify " in out
    assert "probing" in out
    assert "s probing" in out  # elapsed seconds


def test_quick_work_stays_silent(tty: tuple[TextIO, int]) -> None:
    stream, master = tty
    with Progress("work", total=2, stream=stream) as p:
        p.advance()
        p.advance()
    assert _read(master) == ""


def test_disabled_on_a_terminal(tty: tuple[TextIO, int]) -> None:
    stream, master = tty
    with Progress("work", total=2, stream=stream, delay=0, enabled=False) as p:
        p.advance()
        time.sleep(0.2)
    assert _read(master) == ""


def test_nothing_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("work", total=2, stream=stream, delay=0) as p:
        p.advance()
        time.sleep(0.2)
        p.advance()
    assert stream.getvalue() == ""


def _matrix(monkeypatch: pytest.MonkeyPatch, stderr: TextIO, *options: str) -> None:
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    monkeypatch.setattr("sys.stderr", stderr)
    assert main(["matrix", "-f", str(ROOT / "examples" / "multi-tenant"), *options]) == 0


def test_matrix_draws_on_a_terminal(
    tty: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stream, master = tty
    _matrix(monkeypatch, stream)
    out = _read(master)
    assert "kubefence matrix [" in out
    assert "port class" in out
    assert "kubefence matrix" not in capsys.readouterr().out


def test_matrix_json_draws_nothing_on_a_terminal(
    tty: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stream, master = tty
    _matrix(monkeypatch, stream, "-o", "json")
    assert _read(master) == ""
    capsys.readouterr()


def test_matrix_draws_nothing_into_a_pipe(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stderr = io.StringIO()
    _matrix(monkeypatch, stderr)
    assert stderr.getvalue() == ""
    capsys.readouterr()
