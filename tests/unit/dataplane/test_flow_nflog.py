"""The NFLOG parser and the reader's one-line-per-connection memory, without root.

Messages are built here the way ``nfnetlink_log`` writes them (netlink header, nfgenmsg, then
attributes padded to four bytes), including the attributes we do not read, several messages in
one datagram and truncated input.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest

from kubefence.dataplane.netns._flows import FlowEvent, FlowReader
from kubefence.dataplane.netns._nflog import (
    LoggedPacket,
    ack_error,
    bind_request,
    parse_messages,
    parse_packet,
)


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _ipv4(src: str, dst: str, protocol: int, ports: tuple[int, int] | None) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40,
        1,
        0x4000,
        64,
        protocol,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + (struct.pack("!HH", *ports) + b"\0" * 16 if ports else b"\x08\0\0\0")


def _ipv6(src: str, dst: str, protocol: int, ports: tuple[int, int]) -> bytes:
    header = struct.pack("!IHBB", 0x60000000, 20, protocol, 64)
    header += ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    return header + struct.pack("!HH", *ports) + b"\0" * 16


def _message(prefix: str, payload: bytes, *, family: int = 2) -> bytes:
    body = struct.pack("!BBH", family, 0, 17)
    body += _attr(1 | 0x4000, struct.pack("!HBB", 0x0800, 2, 0))  # packet header, flagged
    body += _attr(10, prefix.encode() + b"\0")
    body += _attr(5, struct.pack("!I", 3))  # outdev
    body += _attr(9, payload)
    return struct.pack("=IHHII", 16 + len(body), 4 << 8, 0, 0, 0) + body


def test_ipv4_tcp_packet() -> None:
    data = _message("kf deny in_c1", _ipv4("198.18.0.3", "198.18.0.4", 6, (43122, 80)))
    assert parse_messages(data) == [
        LoggedPacket(
            prefix="kf deny in_c1",
            source=ipaddress.IPv4Address("198.18.0.3"),
            destination=ipaddress.IPv4Address("198.18.0.4"),
            protocol=6,
            source_port=43122,
            destination_port=80,
        )
    ]


def test_several_messages_in_one_datagram_ipv6_and_icmp() -> None:
    data = (
        _message("kf allow", _ipv6("fd00:6b66::c612:3", "fd00:6b66::c612:4", 17, (5000, 53)))
        + _message("kf allow", _ipv4("198.18.0.3", "198.18.0.4", 1, None))
        + struct.pack("=IHHII", 16, 3, 2, 0, 0)  # NLMSG_DONE: skipped
    )
    first, second = parse_messages(data)
    assert (first.source.version, first.protocol, first.destination_port) == (6, 17, 53)
    assert (second.protocol, second.source_port, second.destination_port) == (1, None, None)


def test_truncated_and_foreign_input_is_skipped() -> None:
    good = _message("kf allow", _ipv4("198.18.0.3", "198.18.0.4", 6, (1, 2)))
    assert parse_messages(good[:-5]) == []  # message longer than the datagram
    assert parse_messages(b"") == []
    not_ip = _message("kf allow", b"\x10" * 30)
    assert parse_messages(not_ip + good) == parse_messages(good)
    with pytest.raises(ValueError):
        parse_packet(b"\x45" + b"\0" * 10)


def test_ports_missing_when_the_copy_is_cut_short() -> None:
    payload = _ipv4("198.18.0.3", "198.18.0.4", 6, (1, 2))[:22]
    assert parse_packet(payload)[3:] == (None, None)


def test_bind_request_and_acks() -> None:
    requests = bind_request(17, copy_bytes=96)
    length, kind, flags, sequence, _ = struct.unpack_from("=IHHII", requests[0])
    assert (length, kind, flags, sequence) == (len(requests[0]), (4 << 8) | 1, 5, 1)
    assert requests[0][16:20] == struct.pack("!BBH", 0, 0, 17)
    assert requests[0][20:] == _attr(1, b"\x01")
    assert requests[1][20:] == _attr(2, struct.pack("!IBB", 96, 2, 0))
    ack = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -16) + requests[0][:16]
    assert ack_error(ack) == 16
    assert ack_error(struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", 0)) == 0
    assert ack_error(b"\0" * 8) == -1


def _packet(prefix: str, sport: int) -> LoggedPacket:
    return LoggedPacket(
        prefix=prefix,
        source=ipaddress.IPv4Address("198.18.0.3"),
        destination=ipaddress.IPv4Address("198.18.0.4"),
        protocol=6,
        source_port=sport,
        destination_port=80,
    )


def test_flow_event_from_prefix() -> None:
    denied = FlowEvent.of(_packet("kf deny eg_c2", 1), now=5.0)
    assert denied is not None
    assert not denied.allowed
    assert denied.chain == "eg_c2"
    allowed = FlowEvent.of(_packet("kf allow", 1), now=5.0)
    assert allowed is not None
    assert allowed.allowed
    assert allowed.chain is None
    assert FlowEvent.of(_packet("something else", 1), now=5.0) is None


def test_a_retransmission_is_one_line_and_the_memory_is_bounded() -> None:
    reader = FlowReader("unused", group=17, repeat_window=10.0, remember=3)
    event = FlowEvent.of(_packet("kf deny in_c1", 1000), now=100.0)
    again = FlowEvent.of(_packet("kf deny in_c1", 1000), now=101.0)
    later = FlowEvent.of(_packet("kf deny in_c1", 1000), now=112.0)
    assert event
    assert again
    assert later
    assert reader._first_time(event)
    assert not reader._first_time(again)
    assert reader._first_time(later)  # outside the window: a new attempt
    for port in range(2000, 2010):
        other = FlowEvent.of(_packet("kf deny in_c1", port), now=113.0)
        assert other
        assert reader._first_time(other)
    assert len(reader._recent) == 3
