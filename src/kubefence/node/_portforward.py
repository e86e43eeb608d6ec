"""Port forwarding on the node: the SPDY/3.1 session kubectl tunnels through a WebSocket.

Why this module exists: `kubectl port-forward` (1.37) opens a WebSocket with subprotocol
``SPDY/3.1+portforward.k8s.io`` to ``pods/<name>/portforward``; the API server relays it to the
node (kubelet path ``/portForward/{ns}/{pod}``), and the binary messages carry, end to end, the
bytes of a SPDY/3.1 session in which kubectl is the client. For every local connection kubectl
opens two streams with headers ``streamtype: error|data``, ``port: <n>``, ``requestid: <id>``;
the node connects to ``localhost:<port>`` inside the pod's network namespace (as a kubelet
does), copies bytes between that connection and the data stream, and writes a failure
("error forwarding port ...") to the error stream.

What of SPDY/3 is implemented: frame parsing and writing, SYN_STREAM (headers decompressed with
zlib and the protocol's dictionary, one compression context per direction), SYN_REPLY, DATA with
FIN, RST_STREAM, PING echo, GOAWAY; SETTINGS and WINDOW_UPDATE are read and ignored (kubectl's
SPDY library does not enforce flow-control windows).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kubefence.dataplane.netns import entered

__all__ = ["PROTOCOL", "Frame", "PortForwardSession", "dictionary", "parse_frames"]

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
_VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9,
)  # fmt: skip
FLAG_FIN = 0x01
_RST_CANCEL = 5
_CHUNK = 32 * 1024
_CONNECT_TIMEOUT = 5.0

# The SPDY/3 header-compression dictionary: length-prefixed header names and values, then a
# run of common status codes, reasons, dates and media types (protocol data, not code).
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match if-modified-since "
    "if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer "
    "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status "
    "200_OK version HTTP/1.1 url public set-cookie keep-alive origin"
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def dictionary() -> bytes:
    words = [w.replace("_", " ").encode() for w in _WORDS.split()]
    return b"".join(struct.pack(">I", len(w)) + w for w in words) + _TAIL.encode()


_DICTIONARY = dictionary()


@dataclass(frozen=True, slots=True)
class Frame:
    """One SPDY frame: control (``kind`` > 0) or data (``kind`` 0, ``stream`` set)."""

    kind: int
    flags: int
    payload: bytes
    stream: int = 0


def parse_frames(buffer: bytearray) -> list[Frame]:
    """The complete frames at the start of ``buffer``, removed from it."""
    frames = []
    while len(buffer) >= 8:
        first, flags_length = struct.unpack_from(">II", buffer)
        length = flags_length & 0xFFFFFF
        if len(buffer) < 8 + length:
            break
        payload = bytes(buffer[8 : 8 + length])
        del buffer[: 8 + length]
        if first & 0x80000000:
            frames.append(Frame(first & 0xFFFF, flags_length >> 24, payload))
        else:
            frames.append(Frame(0, flags_length >> 24, payload, stream=first & 0x7FFFFFFF))
    return frames


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | _VERSION, kind, (flags << 24) | len(payload)) + payload


def _data(stream: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", stream & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


def _parse_headers(raw: bytes) -> dict[str, str]:
    (count,) = struct.unpack_from(">I", raw)
    position, headers = 4, {}
    for _ in range(count):
        (size,) = struct.unpack_from(">I", raw, position)
        name = raw[position + 4 : position + 4 + size].decode()
        position += 4 + size
        (size,) = struct.unpack_from(">I", raw, position)
        headers[name.lower()] = raw[position + 4 : position + 4 + size].decode()
        position += 4 + size
    return headers


@dataclass
class _Request:
    """One forwarded connection: its two streams and the pod-side connection."""

    port: int
    error: int = 0
    data: int = 0
    writer: asyncio.StreamWriter | None = None
    pending: list[bytes] = field(default_factory=list)  # data that came before the connect
    client_done: bool = False


Send = Callable[[bytes], Awaitable[None]]


class PortForwardSession:
    """The server side of one kubectl port-forward session, fed the tunneled bytes."""

    def __init__(self, send: Send, *, netns: str, pod: str) -> None:
        self._send_raw = send
        self._netns = netns
        self._pod = pod
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=_DICTIONARY)
        self._deflate = zlib.compressobj(zdict=_DICTIONARY)
        self._lock = asyncio.Lock()
        self._requests: dict[str, _Request] = {}
        self._by_stream: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    async def _send(self, frame: bytes) -> None:
        async with self._lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send_raw(frame)

    async def feed(self, data: bytes) -> None:
        """Tunneled bytes from kubectl; the frames they complete are handled in order."""
        self._buffer += data
        for frame in parse_frames(self._buffer):
            await self._handle(frame)

    async def close(self) -> None:
        """kubectl went away: close every pod-side connection."""
        self.closed = True
        for request in self._requests.values():
            if request.writer is not None:
                request.writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- frames -------------------------------------------------------------------------------

    async def _handle(self, frame: Frame) -> None:
        if frame.kind == 0:
            await self._on_data(frame)
        elif frame.kind == SYN_STREAM:
            await self._on_syn_stream(frame)
        elif frame.kind == PING:
            await self._send(_control(PING, 0, frame.payload))
        elif frame.kind == RST_STREAM:
            (stream,) = struct.unpack_from(">I", frame.payload)
            key = self._by_stream.get(stream & 0x7FFFFFFF)
            request = self._requests.get(key or "")
            if request is not None and request.writer is not None:
                request.writer.close()
        elif frame.kind == GOAWAY:
            await self.close()
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do

    async def _on_syn_stream(self, frame: Frame) -> None:
        stream = struct.unpack_from(">I", frame.payload)[0] & 0x7FFFFFFF
        headers = _parse_headers(self._inflate.decompress(frame.payload[10:]))
        block = self._deflate.compress(struct.pack(">I", 0)) + self._deflate.flush(
            zlib.Z_SYNC_FLUSH
        )
        await self._send(_control(SYN_REPLY, 0, struct.pack(">I", stream) + block))
        kind, key = headers.get("streamtype", ""), headers.get("requestid", "")
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            port = 0
        if kind not in ("error", "data") or not 0 < port < 65536:
            await self._send(_control(RST_STREAM, 0, struct.pack(">II", stream, 1)))
            return
        request = self._requests.setdefault(key, _Request(port))
        setattr(request, kind, stream)
        self._by_stream[stream] = key
        if request.error and request.data:
            task = asyncio.ensure_future(self._forward(key, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _on_data(self, frame: Frame) -> None:
        key = self._by_stream.get(frame.stream)
        request = self._requests.get(key or "")
        if request is None or frame.stream != request.data:
            return  # the error stream carries nothing from kubectl
        if request.writer is None:
            request.pending.append(frame.payload)
            request.client_done = request.client_done or bool(frame.flags & FLAG_FIN)
            return
        if frame.payload:
            request.writer.write(frame.payload)
            with contextlib.suppress(ConnectionError):
                await request.writer.drain()
        if frame.flags & FLAG_FIN and request.writer.can_write_eof():
            with contextlib.suppress(OSError):
                request.writer.write_eof()

    # -- one forwarded connection -------------------------------------------------------------

    async def _connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()

        def make() -> socket.socket:
            with entered(self._netns):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            return sock

        sock = await loop.run_in_executor(None, make)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), _CONNECT_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def _forward(self, key: str, request: _Request) -> None:
        try:
            reader, writer = await self._connect(request.port)
        except (OSError, TimeoutError) as error:
            errno = error.errno if isinstance(error, OSError) else None
            reason = os.strerror(errno) if errno else str(error) or "timed out"
            message = (
                f"error forwarding port {request.port} to pod {self._pod}: failed to connect to "
                f"localhost:{request.port} inside the pod's network namespace: {reason}"
            )
            await self._send(_data(request.error, 0, message.encode()))
            await self._send(_data(request.error, FLAG_FIN, b""))
            await self._send(_control(RST_STREAM, 0, struct.pack(">II", request.data, _RST_CANCEL)))
            return
        request.writer = writer
        for chunk in request.pending:
            writer.write(chunk)
        request.pending.clear()
        if request.client_done and writer.can_write_eof():
            writer.write_eof()
        try:
            while chunk := await reader.read(_CHUNK):
                await self._send(_data(request.data, 0, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if not self.closed:
                await self._send(_data(request.data, FLAG_FIN, b""))
                await self._send(_data(request.error, FLAG_FIN, b""))
            self._requests.pop(key, None)
            self._by_stream.pop(request.data, None)
            self._by_stream.pop(request.error, None)
