"""SCTP probes without SCTP sockets: a raw INIT packet sent, and watched for at the destination.

Why this module exists: this kernel has no SCTP socket support, yet policies may name SCTP ports
and the ruleset filters them. A raw IP socket (protocol 132) can still *send* a well-formed SCTP
INIT (common header, INIT chunk, CRC32c checksum, verification tag 0, so conntrack tracks it as a
new association) from the source pod's namespace, and a raw socket in the destination pod's
namespace sees every SCTP packet that arrives there. "Reachable" then means exactly what the
issue asks: the packet reached the destination pod. Nothing answers an SCTP INIT here, so only
the first packet of an association is tested (replies are covered by conntrack like TCP/UDP).
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time
from collections.abc import Sequence

from kubefence.api import IPAddress
from kubefence.dataplane.netns._system import entered

__all__ = ["IPPROTO_SCTP", "crc32c", "init_packet", "parse_init", "probe_sctp"]

IPPROTO_SCTP = 132
_INIT = 1


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli), the SCTP checksum (RFC 4960 appendix B)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def init_packet(source_port: int, destination_port: int, tag: int) -> bytes:
    """An SCTP packet holding one INIT chunk with ``tag`` as its initiate tag."""
    chunk = struct.pack("!BBHIIHHI", _INIT, 0, 20, tag, 65535, 1, 1, tag)
    header = struct.pack("!HHII", source_port, destination_port, 0, 0)
    checksum = crc32c(header + chunk)
    return header[:8] + struct.pack("<I", checksum) + chunk


def parse_init(payload: bytes) -> tuple[int, int, int] | None:
    """(source port, destination port, initiate tag) of an SCTP INIT packet, else None."""
    if len(payload) < 20 or payload[12] != _INIT:
        return None
    source, destination = struct.unpack("!HH", payload[:4])
    (tag,) = struct.unpack("!I", payload[16:20])
    return source, destination, tag


def _raw(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_SCTP)
    sock.setblocking(False)
    return sock


def probe_sctp(
    probes: Sequence[tuple[str, str, IPAddress, int]],
    *,
    timeout: float,
) -> list[bool]:
    """For each (source netns, destination netns, destination address, port): did an INIT sent
    from the source arrive in the destination namespace within ``timeout``?"""
    sel = selectors.DefaultSelector()
    receivers: list[socket.socket] = []
    senders: dict[tuple[str, int], socket.socket] = {}
    expected: dict[int, int] = {}  # initiate tag -> probe number
    arrived = [False] * len(probes)
    try:
        families = {(dst_ns, addr.version) for _, dst_ns, addr, _ in probes}
        for dst_ns, version in sorted(families):
            with entered(dst_ns):
                sock = _raw(socket.AF_INET if version == 4 else socket.AF_INET6)
            receivers.append(sock)
            sel.register(sock, selectors.EVENT_READ, (dst_ns, version))
        for number, (src_ns, _, address, port) in enumerate(probes):
            sender = (src_ns, address.version)
            if sender not in senders:
                with entered(src_ns):
                    senders[sender] = _raw(
                        socket.AF_INET if address.version == 4 else socket.AF_INET6
                    )
            tag = int.from_bytes(os.urandom(4), "big") | 1
            while tag in expected:
                tag = int.from_bytes(os.urandom(4), "big") | 1
            expected[tag] = number
            source_port = 32768 + number % 28000
            try:
                senders[sender].sendto(init_packet(source_port, port, tag), (str(address), 0))
            except OSError:
                continue  # rejected on the way out (e.g. unreachable): never arrives
        deadline = time.monotonic() + timeout
        pending = len(probes)
        while pending and time.monotonic() < deadline:
            for ready, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                receiver = ready.fileobj
                assert isinstance(receiver, socket.socket)
                while True:
                    try:
                        packet = receiver.recv(65535)
                    except BlockingIOError:
                        break
                    dst_ns, version = ready.data
                    if version == 4:  # IPv4 raw sockets deliver the IP header too
                        packet = packet[(packet[0] & 0x0F) * 4 :]
                    parsed = parse_init(packet)
                    if parsed is None:
                        continue
                    number = expected.get(parsed[2], -1)
                    if number < 0:
                        continue
                    _, wanted_ns, _, wanted_port = probes[number]
                    if wanted_ns == dst_ns and parsed[1] == wanted_port:
                        del expected[parsed[2]]
                        arrived[number] = True
                        pending -= 1
    finally:
        sel.close()
        for opened in (*receivers, *senders.values()):
            opened.close()
    return arrived
