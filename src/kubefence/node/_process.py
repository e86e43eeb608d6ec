"""A process in a pod's network namespace, run the way a container runtime runs one.

Why this module exists: `kubectl exec`, `kubectl attach` and `kubectl logs` need what a
container runtime gives a kubelet for each container process: a process started inside the pod's
network namespace (through ``ip netns exec``, so ``/etc/netns/<ns>/resolv.conf`` is bind-mounted
and DNS works as in the pod), on a pseudo-terminal when ``tty`` or on pipes otherwise; its output
fanned out to every attached client and appended to a log file in the CRI log format kubelets
write (``<RFC3339Nano> <stdout|stderr> <F|P> <text>``, read back by ``kubectl logs
[--timestamps]``); stdin fed by attached clients (closed after the first one leaves when
``stdin_once``); terminal resizes; its exit code (128+N after signal N, as runtimes report
it); and kill (the whole process group: the process runs in its own session).

The node component uses one :class:`ContainerProcess` per interactive container (a shell image's
main process) and one per ``kubectl exec``. The log reading helpers below serve
``/containerLogs``. Everything runs on the caller's asyncio loop; nothing here talks to the API.
Over 400 lines on purpose: the CRI log format is written by the process and read back here, and
splitting writer from reader would spread one format over two modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import fcntl
import os
import signal
import struct
import termios
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "STDERR",
    "STDOUT",
    "ContainerProcess",
    "LogLine",
    "Subscription",
    "follow_log",
    "format_log_line",
    "parse_log_line",
    "read_log",
]

STDOUT = 1  # the channel numbers of the streaming protocol, reused for output chunks
STDERR = 2
_READ_SIZE = 64 * 1024
_BACKLOG = 4096  # output chunks an attached client may fall behind before it is dropped
_HIGH_WATER = 16  # with backpressure, reading stops while a client is this many chunks behind
_DRAIN_AFTER_EXIT = 1.0  # seconds to wait for the output pipes to close once the process exited
_PARTIAL_LINE = 16 * 1024  # a line longer than this is logged in "P" (partial) pieces
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# -- the CRI log format ---------------------------------------------------------------------


def _rfc3339nano(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def format_log_line(stream: str, text: bytes, *, partial: bool = False, at_ns: int = 0) -> bytes:
    """One CRI log line: ``2026-12-07T15:00:00.123456789Z stdout F hello`` plus a newline."""
    stamp = _rfc3339nano(at_ns or time.time_ns())
    return f"{stamp} {stream} {'P' if partial else 'F'} ".encode() + text + b"\n"


@dataclass(frozen=True, slots=True)
class LogLine:
    """A parsed CRI log line; ``text`` excludes the newline that ended it (when ``F``)."""

    timestamp: str
    stream: str
    partial: bool
    text: bytes

    def at(self) -> dt.datetime:
        """The timestamp as a datetime (nanoseconds cut to microseconds)."""
        head, _, frac = self.timestamp.rstrip("Z").partition(".")
        return dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


def parse_log_line(raw: bytes) -> LogLine | None:
    """A line as :func:`format_log_line` writes it (newline included or not); None if malformed."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    text = parts[3] if len(parts) == 4 else b""
    return LogLine(parts[0].decode(), parts[1].decode(), parts[2] == b"P", text)


def _render(line: LogLine, *, timestamps: bool) -> bytes:
    body = line.text if line.partial else line.text + b"\n"
    return f"{line.timestamp} ".encode() + body if timestamps else body


def _selected(line: LogLine, since: dt.datetime | None) -> bool:
    return since is None or line.at() >= since


def read_log(
    path: Path,
    *,
    tail_lines: int | None = None,
    timestamps: bool = False,
    since: dt.datetime | None = None,
) -> tuple[bytes, int]:
    """The log as ``kubectl logs`` shows it, and the file offset it was read up to.

    ``tail_lines`` counts complete lines (a run of ``P`` pieces and their ``F`` is one line).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", 0
    end = data.rfind(b"\n") + 1  # an unfinished last record is left for the follower
    lines = [p for raw in data[:end].splitlines() if (p := parse_log_line(raw)) is not None]
    lines = [line for line in lines if _selected(line, since)]
    if tail_lines is not None:
        complete = [i for i, line in enumerate(lines) if not line.partial]
        if tail_lines == 0:
            lines = []
        elif len(complete) > tail_lines:
            lines = lines[complete[-tail_lines - 1] + 1 :]
    return b"".join(_render(line, timestamps=timestamps) for line in lines), end


async def follow_log(
    path: Path,
    offset: int,
    *,
    timestamps: bool = False,
    done: asyncio.Event | None = None,
    poll: float = 0.1,
) -> AsyncIterator[bytes]:
    """New log content from ``offset`` on, as it is appended, until ``done`` is set (then the
    rest is read once more) or the caller stops iterating."""
    position = offset
    while True:
        finished = done is not None and done.is_set()
        try:
            with path.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        end = chunk.rfind(b"\n") + 1
        if end:
            position += end
            out = b"".join(
                _render(p, timestamps=timestamps)
                for raw in chunk[:end].splitlines()
                if (p := parse_log_line(raw)) is not None
            )
            if out:
                yield out
        if finished:
            return
        if done is None:
            await asyncio.sleep(poll)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), poll)


class _LogWriter:
    """Appends output chunks to a CRI log file, one record per line of each stream."""

    __slots__ = ("_file", "_pending")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("ab", buffering=0)
        self._pending: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buffer = self._pending.get(stream, b"") + data
        records: list[bytes] = []
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                break
            records.append(format_log_line(stream, buffer[:cut]))
            buffer = buffer[cut + 1 :]
        while len(buffer) >= _PARTIAL_LINE:
            records.append(format_log_line(stream, buffer[:_PARTIAL_LINE], partial=True))
            buffer = buffer[_PARTIAL_LINE:]
        self._pending[stream] = buffer
        if records:
            self._file.write(b"".join(records))

    def close(self) -> None:
        tail = [format_log_line(s, rest) for s, rest in self._pending.items() if rest]
        self._pending.clear()
        if tail:
            self._file.write(b"".join(tail))
        self._file.close()


# -- the process ----------------------------------------------------------------------------


class Subscription:
    """One attached client's view of a process's output: ``(channel, bytes)`` chunks, then
    ``None`` once the process has exited and its output is drained (or the client fell more
    than a backlog behind and was dropped)."""

    __slots__ = ("_queue", "_room", "dropped")

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(_BACKLOG + 1)
        self._room = asyncio.Event()
        self._room.set()
        self.dropped = False

    def _offer(self, item: tuple[int, bytes] | None) -> bool:
        if self.dropped:
            return False
        if item is not None and self._queue.qsize() >= _BACKLOG:
            self.dropped = True
            item = None
        self._queue.put_nowait(item)
        if item is None:
            self._room.set()  # nothing more will come: never make a producer wait
        elif self._queue.qsize() >= _HIGH_WATER:
            self._room.clear()
        return not self.dropped

    async def room(self) -> None:
        """Wait until this client is less than a few chunks behind."""
        await self._room.wait()

    async def next(self) -> tuple[int, bytes] | None:
        item = await self._queue.get()
        if self._queue.qsize() < _HIGH_WATER:
            self._room.set()
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        item = await self.next()
        if item is None:
            raise StopAsyncIteration
        return item


def _make_controlling_tty() -> None:  # runs in the child, after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ContainerProcess:
    """A running process of a pod: output fan-out, stdin, resize, exit code, kill.

    Start one with :meth:`spawn`. Output goes to the log file (if any) and to every
    :class:`Subscription` from :meth:`subscribe`; subscribe right after ``spawn`` returns,
    before awaiting anything else, to see all of it. The process's stdio are file descriptors
    this object owns (a pty master, or pipes), read on the loop; so a child that keeps them
    open cannot hold the exit back for more than a second.
    """

    __slots__ = (
        "_done",
        "_emitted",
        "_log",
        "_outputs",
        "_process",
        "_stdin",
        "_subscribers",
        "_task",
        "_waiting",
        "argv",
        "backpressure",
        "stdin_once",
        "tty",
    )

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        argv: Sequence[str],
        tty: bool,
        outputs: Sequence[tuple[int, int]],
        stdin: int | None,
        log: _LogWriter | None,
        stdin_once: bool,
        backpressure: bool = False,
    ) -> None:
        self._process = process
        self.backpressure = backpressure
        self._emitted = 0
        self._waiting = False  # a pump waits for a slow subscriber
        self.argv = tuple(argv)
        self.tty = tty
        self.stdin_once = stdin_once
        self._outputs = tuple(outputs)  # (fd, channel); with a tty the master, once
        self._stdin = stdin  # the fd input goes to (the master with a tty); None once closed
        self._log = log
        self._subscribers: list[Subscription] = []
        self._done = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        netns: str | None,
        tty: bool = False,
        stdin: bool = False,
        stdin_once: bool = False,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        size: tuple[int, int] | None = None,
        backpressure: bool = False,
    ) -> ContainerProcess:
        """Start ``argv`` in network namespace ``netns`` (None: the caller's own namespace).

        With ``tty`` the process gets a pseudo-terminal as stdin/stdout/stderr and controlling
        terminal (``size`` is its initial (width, height)); otherwise pipes, stdin only when
        ``stdin`` (else /dev/null). With ``backpressure`` (one exec client) output is read
        only as fast as the slowest subscriber takes it, so a fast writer blocks instead of
        filling memory; otherwise (attach fan-out) a client too far behind is dropped. Raises
        OSError when the program cannot be started.
        """
        if not argv:
            raise ValueError("an empty command cannot be run")
        command = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
        environment = {"PATH": DEFAULT_PATH, "HOME": "/root", **(env or {})}
        if tty:
            environment.setdefault("TERM", "xterm")
        ours: list[int] = []  # our ends, closed if the start fails
        theirs: list[int] = []  # the child's ends, closed in any case once it started
        try:
            if tty:
                master, slave = os.openpty()
                ours.append(master)
                theirs.append(slave)
                if size is not None:
                    _set_size(master, *size)
                child_in, child_out, child_err = slave, slave, slave
                outputs, stdin_fd = [(master, STDOUT)], master
            else:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                ours += [out_r, err_r]
                theirs += [out_w, err_w]
                child_in, child_out, child_err = asyncio.subprocess.DEVNULL, out_w, err_w
                outputs, stdin_fd = [(out_r, STDOUT), (err_r, STDERR)], None
                if stdin:
                    in_r, in_w = os.pipe()
                    ours.append(in_w)
                    theirs.append(in_r)
                    child_in = in_r
                    stdin_fd = in_w
            process = await asyncio.create_subprocess_exec(
                *command, stdin=child_in, stdout=child_out, stderr=child_err, env=environment,
                cwd=cwd, start_new_session=True, preexec_fn=_make_controlling_tty if tty else None,
            )  # fmt: skip
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        for fd in ours:
            os.set_blocking(fd, False)
        log = _LogWriter(log_path) if log_path is not None else None
        return cls(process, argv=argv, tty=tty, outputs=outputs, stdin=stdin_fd, log=log,
                   stdin_once=stdin_once, backpressure=backpressure)  # fmt: skip

    # -- state --------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while running (or while output drains), else the exit code (128+N for signal
        N)."""
        if not self._done.is_set():
            return None
        code = self._process.returncode
        assert code is not None
        return 128 - code if code < 0 else code

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    async def wait(self) -> int:
        """Wait for the exit and the end of its output; the exit code."""
        await self._done.wait()
        code = self.returncode
        assert code is not None
        return code

    # -- output -------------------------------------------------------------------------------

    def subscribe(self) -> Subscription:
        """A new view of the output from now on (ends at once if the process is done)."""
        subscription = Subscription()
        if self._done.is_set():
            subscription._offer(None)
        else:
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscription)

    def _emit(self, channel: int, data: bytes) -> None:
        self._emitted += len(data)
        if self._log is not None:
            self._log.write("stderr" if channel == STDERR else "stdout", data)
        self._subscribers = [s for s in self._subscribers if s._offer((channel, data))]

    async def _pump(self, fd: int, channel: int) -> None:
        """Read ``fd`` until EOF (a pty master reports EIO once no one holds the terminal)."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                while True:
                    try:
                        chunk = os.read(fd, _READ_SIZE)
                    except BlockingIOError:
                        break
                    except OSError as error:
                        if error.errno == errno.EIO:
                            return
                        raise
                    if not chunk:
                        return
                    self._emit(channel, chunk)
                    if self.backpressure:
                        self._waiting = True
                        for subscription in list(self._subscribers):
                            await subscription.room()
                        self._waiting = False
        finally:
            loop.remove_reader(fd)

    async def _run(self) -> None:
        pumps = [asyncio.ensure_future(self._pump(fd, channel)) for fd, channel in self._outputs]
        try:
            await self._process.wait()
            # Output written just before the exit is still buffered; children that kept the
            # pipes or the terminal open must not hold the exit back for long: stop once a
            # whole second passes without output (a slow client is not a reason to stop).
            while True:
                before = self._emitted
                _, late = await asyncio.wait(pumps, timeout=_DRAIN_AFTER_EXIT)
                if not late or (self._emitted == before and not self._waiting):
                    break
            for pump in late:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            fds = {fd for fd, _ in self._outputs}
            if self._stdin is not None:
                fds.add(self._stdin)
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._stdin = None
            if self._log is not None:
                self._log.close()
            self._done.set()
            for subscription in self._subscribers:
                subscription._offer(None)
            self._subscribers = []

    # -- input and control --------------------------------------------------------------------

    async def write_stdin(self, data: bytes) -> None:
        """Feed the process's stdin (the terminal's input with ``tty``); ignored once closed."""
        if self._stdin is not None and self.running and data:
            await _write_all(self._stdin, data)

    def close_stdin(self) -> None:
        """End of input: EOF on the pipe, or the terminal's EOF character (^D) with a tty."""
        fd, self._stdin = self._stdin, None
        if fd is None or not self.running:
            return
        with contextlib.suppress(OSError):
            if self.tty:
                os.write(fd, b"\x04")
            else:
                os.close(fd)

    def resize(self, width: int, height: int) -> None:
        """Set the terminal's size (the foreground process group gets SIGWINCH); no-op without
        a tty."""
        if self.tty and self.running and width > 0 and height > 0:
            with contextlib.suppress(OSError):
                _set_size(self._outputs[0][0], width, height)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process's whole session: it and what it started, also what it left
        running after its exit (the session keeps its id while any member lives)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)

    async def stop(self, grace: float = 2.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
        self.kill(signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.shield(self.wait()), grace)
        except TimeoutError:
            self.kill(signal.SIGKILL)
            return await self.wait()


def _set_size(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _write_all(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(fd, writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(fd)
            continue
        except OSError:
            return
        view = view[written:]
