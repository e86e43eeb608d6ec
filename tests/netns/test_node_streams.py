"""The node end of exec/attach/logs: ContainerProcess in a real network namespace, and the
kubelet-style routes spoken to directly (WebSocket channel frames, client-certificate checks).

No API server here (tests/control/test_pod_streams.py drives the whole path with kubectl).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.netns.streams_support import (
    FakePod,
    FakePods,
    NodeServer,
    issue_leaf,
    network_namespace,
)

from kubefence.control.pki import ClusterPKI, ensure_pki
from kubefence.dataplane.netns import entered
from kubefence.node._portforward import Frame, PortForwardSession, dictionary, parse_frames
from kubefence.node._process import (
    ContainerProcess,
    follow_log,
    format_log_line,
    parse_log_line,
    read_log,
)
from kubefence.node._streams import exit_status

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    with network_namespace("nodestreams") as name:
        yield name


async def _collect(process: ContainerProcess) -> list[tuple[int, bytes]]:
    return [item async for item in process.subscribe()]


# -- ContainerProcess ---------------------------------------------------------------------------


def test_process_runs_in_the_namespace_with_its_resolv_conf(netns: str) -> None:
    """``ip netns exec`` gives the process the pod's network and its /etc/netns resolv.conf."""
    etc = Path("/etc/netns") / netns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text("nameserver 198.19.0.10\nsearch default.svc.cluster.local\n")
    try:

        async def run() -> tuple[list[tuple[int, bytes]], int]:
            argv = ["sh", "-c", "ip netns identify; cat /etc/resolv.conf; exit 7"]
            process = await ContainerProcess.spawn(argv, netns=netns)
            output = process.subscribe()
            return [item async for item in output], await process.wait()

        output, code = asyncio.run(run())
    finally:
        shutil.rmtree(etc, ignore_errors=True)
    text = b"".join(data for channel, data in output if channel == 1).decode()
    assert text == f"{netns}\nnameserver 198.19.0.10\nsearch default.svc.cluster.local\n"
    assert code == 7


def test_process_output_fans_out_and_goes_to_the_cri_log(netns: str, tmp_path: Path) -> None:
    log = tmp_path / "main.log"

    async def run() -> tuple[list[Any], list[Any], int]:
        argv = ["sh", "-c", "read a; echo out $a; echo err >&2; printf tail"]
        process = await ContainerProcess.spawn(argv, netns=netns, stdin=True, log_path=log)
        one, two = process.subscribe(), process.subscribe()
        await process.write_stdin(b"x\n")
        first, second = await asyncio.gather(
            asyncio.ensure_future(_drain(one)), asyncio.ensure_future(_drain(two))
        )
        return first, second, await process.wait()

    first, second, code = asyncio.run(run())
    assert first == second
    assert b"".join(data for channel, data in first if channel == 1) == b"out x\ntail"
    assert b"".join(data for channel, data in first if channel == 2) == b"err\n"
    assert code == 0
    records = [parse_log_line(line) for line in log.read_bytes().splitlines()]
    assert [(r.stream, r.partial, r.text) for r in records if r] == [
        ("stdout", False, b"out x"),
        ("stderr", False, b"err"),
        ("stdout", False, b"tail"),  # the unfinished last line is written at exit
    ]


async def _drain(subscription: Any) -> list[tuple[int, bytes]]:
    return [item async for item in subscription]


def test_process_pty_resize_kill_and_stop(netns: str) -> None:
    async def run() -> tuple[bytes, int, int]:
        argv = ["sh", "-c", "trap 'stty size' WINCH; stty size; while :; do sleep 0.05; done"]
        process = await ContainerProcess.spawn(argv, netns=netns, tty=True, size=(80, 24))
        output = process.subscribe()
        seen = b""
        while b"24 80" not in seen:
            item = await asyncio.wait_for(output.next(), 10)
            assert item is not None
            seen += item[1]
        process.resize(120, 50)
        while b"50 120" not in seen:
            item = await asyncio.wait_for(output.next(), 10)
            assert item is not None
            seen += item[1]
        process.kill()
        killed = await asyncio.wait_for(process.wait(), 10)
        sleeper = await ContainerProcess.spawn(["sleep", "30"], netns=netns)
        stopped = await asyncio.wait_for(sleeper.stop(grace=5), 10)
        return seen, killed, stopped

    seen, killed, stopped = asyncio.run(run())
    assert b"24 80" in seen
    assert (killed, stopped) == (128 + signal.SIGKILL, 128 + signal.SIGTERM)


def test_process_exit_is_not_held_by_a_child_keeping_the_pipes(netns: str) -> None:
    async def run() -> tuple[float, list[Any]]:
        started = time.monotonic()
        process = await ContainerProcess.spawn(["sh", "-c", "sleep 3 & echo hi"], netns=netns)
        output = process.subscribe()
        items = [item async for item in output]
        await process.wait()
        elapsed = time.monotonic() - started
        process.kill()  # the sleeping child, in the process's session
        return elapsed, items

    elapsed, items = asyncio.run(run())
    assert items == [(1, b"hi\n")]
    assert elapsed < 2.5


def test_stdin_once_and_close_stdin(netns: str) -> None:
    async def run() -> tuple[list[Any], int]:
        process = await ContainerProcess.spawn(["cat"], netns=netns, stdin=True, stdin_once=True)
        output = process.subscribe()
        await process.write_stdin(b"one\n")
        process.close_stdin()
        await process.write_stdin(b"ignored\n")
        return [item async for item in output], await process.wait()

    assert asyncio.run(run()) == ([(1, b"one\n")], 0)


def test_an_unknown_program_cannot_be_spawned_without_ip() -> None:
    async def run() -> None:
        await ContainerProcess.spawn(["/no/such/program"], netns=None)

    with pytest.raises(FileNotFoundError):
        asyncio.run(run())


# -- the CRI log format -------------------------------------------------------------------------


def test_log_reading_tail_timestamps_partial_and_since(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    lines = [
        format_log_line("stdout", b"one", at_ns=1_700_000_000_000_000_001),
        format_log_line("stderr", b"tw", partial=True, at_ns=1_700_000_001_000_000_000),
        format_log_line("stderr", b"o", at_ns=1_700_000_001_500_000_000),
        format_log_line("stdout", b"three", at_ns=1_700_000_002_000_000_000),
    ]
    log.write_bytes(b"".join(lines) + b"2023-11-14T22:13:23.0Z stdout F unfini")
    assert lines[0] == b"2023-11-14T22:13:20.000000001Z stdout F one\n"
    text, offset = read_log(log)
    assert text == b"one\ntwo\nthree\n"
    assert offset == sum(len(line) for line in lines)  # the unfinished record is not read
    assert read_log(log, tail_lines=2)[0] == b"two\nthree\n"  # P + F pieces are one line
    assert read_log(log, tail_lines=0)[0] == b""
    stamped = read_log(log, tail_lines=1, timestamps=True)[0]
    assert stamped == b"2023-11-14T22:13:22.000000000Z three\n"
    record = parse_log_line(lines[2])
    assert record is not None
    assert read_log(log, since=record.at())[0] == b"o\nthree\n"
    assert parse_log_line(b"garbage") is None


def test_follow_log_reads_appended_lines_until_done(tmp_path: Path) -> None:
    log = tmp_path / "f.log"
    log.write_bytes(format_log_line("stdout", b"old"))

    async def run() -> list[bytes]:
        done = asyncio.Event()
        _, offset = read_log(log)
        got: list[bytes] = []

        async def writer() -> None:
            await asyncio.sleep(0.2)
            with log.open("ab") as handle:
                handle.write(format_log_line("stdout", b"new"))
            await asyncio.sleep(0.2)
            done.set()

        task = asyncio.ensure_future(writer())
        async for chunk in follow_log(log, offset, done=done, poll=0.05):
            got.append(chunk)
        await task
        return got

    assert asyncio.run(asyncio.wait_for(run(), 10)) == [b"new\n"]


# -- the routes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    server: NodeServer
    pki: ClusterPKI
    client: tuple[Path, Path]
    netns: str

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.port}{path}"

    def tls(self, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if cert is not None:
            context.load_cert_chain(*cert)
        return context


@pytest.fixture(scope="module")
def node(netns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("node")
    pki = ensure_pki(tmp / "pki")
    cert, key = issue_leaf(pki.ca_cert, pki.ca_key, tmp, name="serving",
                           common_name="system:node:n1", server=True)  # fmt: skip
    directory = FakePods({("default", "p"): FakePod(netns, ["c"], logs={"c": tmp / "c.log"})})
    (tmp / "c.log").write_bytes(format_log_line("stdout", b"hello"))
    server = NodeServer(directory, cert=cert, key=key, ca_cert=pki.ca_cert).start()
    try:
        yield Node(server, pki, (pki.kubelet_client_cert, pki.kubelet_client_key), netns)
    finally:
        server.stop()


async def _get(node: Node, path: str, cert: tuple[Path, Path] | None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(node.url(path), ssl=node.tls(cert)) as answer,
    ):
        got = answer.status, await answer.text()
    await asyncio.sleep(0.25)  # TLS transports close after the session (aiohttp's advice)
    return got


def test_only_the_api_servers_kubelet_client_certificate_is_served(node: Node) -> None:
    admin = (node.pki.admin_cert, node.pki.admin_key)
    for cert in (None, admin):
        code, body = asyncio.run(_get(node, "/containerLogs/default/p/c", cert))
        assert code == 403, body
        assert json.loads(body)["reason"] == "Forbidden"
    assert asyncio.run(_get(node, "/containerLogs/default/p/c", node.client)) == (200, "hello\n")


def test_unknown_pod_container_and_missing_upgrade(node: Node) -> None:
    cases = {
        "/exec/default/nope/c?command=true": (404, "pod does not exist"),
        "/exec/default/p/x?command=true": (404, 'container not found ("x")'),
        "/exec/default/p/c?command=true": (426, "this node streams over WebSockets only"),
        "/attach/default/p/c?output=1": (400, 'container "c" in pod "p" is not running'),
        "/containerLogs/default/p/c?previous=true": (400, "previous terminated container"),
    }
    for path, (code, message) in cases.items():
        got, body = asyncio.run(_get(node, path, node.client))
        assert got == code, (path, body)
        assert message in json.loads(body)["message"]


async def _exec(
    node: Node, query: str, *, protocol: str, stdin: bytes | None = None
) -> tuple[str | None, list[tuple[int, bytes]]]:
    frames: list[tuple[int, bytes]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            node.url(f"/exec/default/p/c?{query}"), protocols=(protocol,), ssl=node.tls(node.client)
        ) as ws,
    ):
        if stdin is not None:
            await ws.send_bytes(b"\x00" + stdin)
            await ws.send_bytes(b"\xff\x00")  # v5: close stdin
        async for message in ws:
            assert message.type == aiohttp.WSMsgType.BINARY
            frames.append((message.data[0], message.data[1:]))
        protocol = ws.protocol
    await asyncio.sleep(0.25)  # TLS transports close after the session (aiohttp's advice)
    return protocol, frames


def test_exec_frames_v5(node: Node) -> None:
    query = "command=sh&command=-c&command=cat;echo+e+>%262;exit+3&input=1&output=1&error=1"
    protocol, frames = asyncio.run(_exec(node, query, protocol="v5.channel.k8s.io", stdin=b"in\n"))
    assert protocol == "v5.channel.k8s.io"
    assert (1, b"in\n") in frames
    assert (2, b"e\n") in frames
    assert frames[-1][0] == 3
    status = json.loads(frames[-1][1])
    assert status == exit_status(["sh", "-c", "cat;echo e >&2;exit 3"], 3)
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_exec_frames_v4_and_output_selection(node: Node) -> None:
    query = "command=sh&command=-c&command=echo+o;echo+e+>%262&output=1"
    protocol, frames = asyncio.run(_exec(node, query, protocol="v4.channel.k8s.io"))
    assert protocol == "v4.channel.k8s.io"
    assert frames == [(1, b"o\n"), (3, json.dumps(exit_status([], 0)).encode())]


# -- port-forward (SPDY/3.1) --------------------------------------------------------------------


class _SpdyClient:
    """Just enough of a SPDY client to drive a PortForwardSession frame by frame."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zdict=dictionary())
        self.inflate = zlib.decompressobj(zdict=dictionary())
        self.sent: list[Frame] = []
        self._buffer = bytearray()

    async def receive(self, data: bytes) -> None:  # what the session sends to kubectl
        self._buffer += data
        self.sent += parse_frames(self._buffer)

    def syn_stream(self, stream: int, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
            for k, v in headers.items()
        )
        block = self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIH", stream, 0, 0) + block
        return struct.pack(">HHI", 0x8003, 1, len(payload)) + payload

    @staticmethod
    def data(stream: int, payload: bytes, *, fin: bool = False) -> bytes:
        return struct.pack(">II", stream, (int(fin) << 24) | len(payload)) + payload


def test_port_forward_session_frames(netns: str) -> None:
    """SYN_REPLY for each stream, data sent before the pod connection is up delivered after,
    kubectl's FIN seen by the pod as EOF, the pod's answer and FIN back, PING echoed, a stream
    of an unknown type reset, a closed port reported on the error stream."""

    async def run() -> tuple[_SpdyClient, bytes]:
        with entered(netns):
            listener = socket.socket()
        listener.bind(("127.0.0.1", 7000))
        listener.listen()
        listener.setblocking(False)
        loop = asyncio.get_running_loop()

        async def serve() -> bytes:
            connection, _ = await loop.sock_accept(listener)
            got = b""
            while chunk := await loop.sock_recv(connection, 4096):
                got += chunk
            await loop.sock_sendall(connection, b"pong:" + got)
            connection.close()
            return got

        server = asyncio.ensure_future(serve())
        client = _SpdyClient()
        session = PortForwardSession(client.receive, netns=netns, pod="p")
        headers = {"port": "7000", "requestid": "0"}
        await session.feed(client.syn_stream(1, {"streamtype": "error", **headers}))
        await session.feed(client.syn_stream(3, {"streamtype": "data", **headers}))
        await session.feed(client.data(3, b"ping") + client.data(3, b"", fin=True))
        await session.feed(struct.pack(">HHI", 0x8003, 6, 4) + struct.pack(">I", 7))  # PING 7
        await session.feed(client.syn_stream(5, {"streamtype": "bogus", **headers}))
        got = await asyncio.wait_for(server, 10)
        closed = {"port": "7001", "requestid": "1"}
        await session.feed(client.syn_stream(7, {"streamtype": "error", **closed}))
        await session.feed(client.syn_stream(9, {"streamtype": "data", **closed}))
        for _ in range(100):
            if any(f.stream == 3 and f.flags & 1 for f in client.sent) and any(
                f.stream == 7 and f.payload for f in client.sent
            ):
                break
            await asyncio.sleep(0.05)
        await session.close()
        listener.close()
        return client, got

    client, got = asyncio.run(run())
    assert got == b"ping"
    replies = [f for f in client.sent if f.kind == 2]
    assert sorted(struct.unpack_from(">I", f.payload)[0] for f in replies) == [1, 3, 5, 7, 9]
    for reply in replies:  # empty header blocks, decompressed in order with the dictionary
        assert client.inflate.decompress(reply.payload[4:]) == b"\0\0\0\0"
    assert b"".join(f.payload for f in client.sent if f.kind == 0 and f.stream == 3) == b"pong:ping"
    assert any(f.kind == 0 and f.stream == 3 and f.flags & 1 for f in client.sent)
    assert [f.payload for f in client.sent if f.kind == 6] == [struct.pack(">I", 7)]
    resets = [struct.unpack(">II", f.payload) for f in client.sent if f.kind == 3]
    assert (5, 1) in resets  # unknown stream type: PROTOCOL_ERROR
    assert (9, 5) in resets  # the closed port's data stream: CANCEL
    error = b"".join(f.payload for f in client.sent if f.kind == 0 and f.stream == 7).decode()
    assert "error forwarding port 7001 to pod p" in error
    assert "Connection refused" in error


def test_exec_process_is_stopped_when_the_client_leaves(node: Node) -> None:
    marker = "31.4159"

    async def run() -> None:
        url = node.url(f"/exec/default/p/c?command=sleep&command={marker}&output=1")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, protocols=("v5.channel.k8s.io",), ssl=node.tls(node.client)),
        ):
            for _ in range(100):
                if _sleepers(marker):
                    break
                await asyncio.sleep(0.05)
            assert _sleepers(marker)
        await asyncio.sleep(0.25)

    asyncio.run(run())
    deadline = time.monotonic() + 10
    while _sleepers(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _sleepers(marker)


def _sleepers(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", marker.encode()]:
                found.append(int(entry.name))
    return found


def test_backpressure_holds_a_fast_writer_and_loses_nothing(netns: str) -> None:
    """With backpressure (exec) a client that does not read makes the writer wait (a bounded
    queue, the writer blocked on its pipe); then every byte arrives."""
    size = 8 * 1024 * 1024

    async def run() -> tuple[int, int, int]:
        argv = ["head", "-c", str(size), "/dev/zero"]
        process = await ContainerProcess.spawn(argv, netns=netns, backpressure=True)
        output = process.subscribe()
        await asyncio.sleep(1.5)  # not reading: the writer must block, not fill memory
        behind = output._queue.qsize()
        assert _alive(process.pid)  # blocked on a full pipe, not done
        total = 0
        async for _, data in output:
            total += len(data)
        return behind, total, await process.wait()

    behind, total, code = asyncio.run(asyncio.wait_for(run(), 60))
    assert behind <= 17
    assert (total, code) == (size, 0)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
