"""A container's supervisor: runs its command, writes the CRI log and the exit code, then exits.

Why this module exists: a non-interactive container's process must outlive a SIGKILLed node
component, yet ``kubectl logs`` reads the kubelet's CRI log format (``<RFC3339Nano>
<stdout|stderr> <F|P> <text>`` per line) and the component must learn the exit code after it
restarts. ``python -m kubefence.node._logpipe --log F --exit F [--stdin FIFO] -- ARGV...``,
started by the node component through ``ip netns exec <pod netns>`` (so the pod's
``/etc/netns/<ns>/resolv.conf`` is its ``/etc/resolv.conf``) in a session of its own, runs
ARGV with pipes, appends each output line to the log as it comes, and writes the exit status
(128+N after signal N) to the exit file before exiting with it. Killing the session kills both.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import selectors
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = ["cri_line", "main"]

_PARTIAL = 16 * 1024  # longer lines are written in P (partial) pieces, as kubelets do


def cri_line(stream: str, text: bytes, *, partial: bool = False) -> bytes:
    """One CRI log record (``text`` without its newline)."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"
    return f"{stamp} {stream} {'P' if partial else 'F'} ".encode() + text + b"\n"


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.pending = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
        buffer = self.pending[stream] + data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            self.out.write(cri_line(stream, line))
        while len(buffer) > _PARTIAL:
            self.out.write(cri_line(stream, buffer[:_PARTIAL], partial=True))
            buffer = buffer[_PARTIAL:]
        self.pending[stream] = buffer
        self.out.flush()

    def close(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self.out.write(cri_line(stream, rest))
        self.out.flush()


def run(argv: Sequence[str], *, log: Path, exit_file: Path, stdin: Path | None) -> int:
    source: int | None = None
    if stdin is not None:
        source = os.open(stdin, os.O_RDWR)  # held open: the command waits instead of EOF
    try:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL if source is None else source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        with open(log, "ab") as out:
            out.write(cri_line("stderr", f"cannot start {argv[0]!r}: {exc.strerror}".encode()))
        _write_exit(exit_file, 127)
        return 127
    finally:
        if source is not None:
            os.close(source)
    assert child.stdout is not None
    assert child.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, "stdout")
    selector.register(child.stderr, selectors.EVENT_READ, "stderr")
    with open(log, "ab") as out:
        writer = _Writer(out)
        open_streams = 2
        while open_streams:
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                else:
                    writer.feed(key.data, data)
        writer.close()
    code = child.wait()
    code = 128 - code if code < 0 else code
    _write_exit(exit_file, code)
    return code


def _write_exit(path: Path, code: int) -> None:
    partial = path.with_name(path.name + ".tmp")
    with contextlib.suppress(OSError):
        partial.write_text(f"{code}\n")
        partial.replace(path)


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubefence.node._logpipe")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--exit", type=Path, required=True, dest="exit_file")
    parser.add_argument("--stdin", type=Path, default=None)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    options = parser.parse_args(args)
    argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
    if not argv:
        parser.error("no command")
    return run(argv, log=options.log, exit_file=options.exit_file, stdin=options.stdin)


if __name__ == "__main__":
    sys.exit(main())
