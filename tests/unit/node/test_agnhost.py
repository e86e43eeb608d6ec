"""The agnhost shim's ``connect`` against loopback: exit codes and messages as upstream's."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kubefence.node._agnhost import main


@pytest.fixture
def udp_echo() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    def answer() -> None:
        try:
            data, peer = sock.recvfrom(1024)
            sock.sendto(b"host\n" if data == b"hostname\n" else b"?\n", peer)
        except OSError:
            pass

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    sock.close()
    thread.join(1)


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tcp_connect_succeeds_or_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert main(["connect", f"127.0.0.1:{port}", "--timeout=1s"]) == 0
    closed = _free_port(socket.SOCK_STREAM)
    assert main(["connect", f"127.0.0.1:{closed}", "--timeout=1s", "--protocol=tcp"]) == 1
    assert capsys.readouterr().err == "REFUSED\n"


def test_udp_connect_needs_an_answer(udp_echo: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connect", f"127.0.0.1:{udp_echo}", "--timeout=1s", "--protocol=udp"]) == 0
    closed = _free_port(socket.SOCK_DGRAM)
    assert main(["connect", f"127.0.0.1:{closed}", "--timeout=1s", "--protocol=udp"]) == 1
    assert capsys.readouterr().err.startswith("REFUSED")


def test_unresolvable_hosts_and_sctp(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connect", "no-such-host.invalid:80", "--timeout=1s"]) == 1
    assert capsys.readouterr().err.startswith("DNS: ")
    assert main(["connect", "127.0.0.1:80", "--protocol=sctp"]) == 1
    assert capsys.readouterr().err.startswith("OTHER: ")
