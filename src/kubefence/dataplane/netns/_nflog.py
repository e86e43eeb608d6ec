"""The NFLOG wire format: configuration requests out, logged packets in, as bytes <-> data.

Why this module exists: ``kubefence flows`` reads the packets the flow-log rules send to an NFLOG
group (``nfnetlink_log``) over a netlink socket. No well-kept Python library reads NFLOG today
(pyroute2 has no NFLOG socket; the PyPI ``nflog`` bindings date from 2016 and need libnfnetlink),
and the part we need is small: bind a group, ask for the first bytes of each packet, then read
the prefix and the IP header of each message. So this module parses the TLVs itself, as pure
functions over bytes (unit-tested without root); ``_flows`` owns the socket.

Facts of the kernel's ABI used here (``linux/netfilter/nfnetlink_log.h``): messages are netlink
messages of subsystem ``NFNL_SUBSYS_ULOG`` (4) with a 4-byte ``nfgenmsg`` (family, version,
group in network order) and then attributes (``nlattr``: length, type, payload, padded to 4).
A logged packet is message type 0 (``NFULNL_MSG_PACKET``) with ``NFULA_PREFIX`` (10, a
NUL-terminated string) and ``NFULA_PAYLOAD`` (9, the packet from its network header on).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from kubefence.api import IPAddress

__all__ = [
    "LoggedPacket",
    "ack_error",
    "bind_request",
    "config_request",
    "parse_messages",
    "parse_packet",
]

_SUBSYS_ULOG = 4
_MSG_PACKET = 0
_MSG_CONFIG = 1
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 1
_NLM_F_ACK = 4
_CFG_CMD = 1
_CFG_MODE = 2
_CFG_TIMEOUT = 4
_CFG_QTHRESH = 5
_CMD_BIND = 1
_COPY_PACKET = 2
_ATTR_PAYLOAD = 9
_ATTR_PREFIX = 10
_ATTR_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_ATTR = struct.Struct("=HH")
_PORTED = {6, 17, 132}  # TCP, UDP, SCTP: the first four bytes are the two ports


@dataclass(frozen=True, slots=True)
class LoggedPacket:
    """What one NFLOG message says about the first packet of a connection."""

    prefix: str
    source: IPAddress
    destination: IPAddress
    protocol: int  # IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1/58 ICMP, ...)
    source_port: int | None  # None for protocols without ports
    destination_port: int | None


def _attribute(kind: int, payload: bytes) -> bytes:
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def config_request(group: int, attributes: bytes, *, sequence: int, family: int = 0) -> bytes:
    """One ``NFULNL_MSG_CONFIG`` request for ``group`` asking for an acknowledgement."""
    body = struct.pack("!BBH", family, 0, group) + attributes
    header = _HEADER.pack(
        _HEADER.size + len(body),
        (_SUBSYS_ULOG << 8) | _MSG_CONFIG,
        _NLM_F_REQUEST | _NLM_F_ACK,
        sequence,
        0,
    )
    return header + body


def bind_request(
    group: int, *, copy_bytes: int = 128, batch: int = 64, flush_centiseconds: int = 10
) -> list[bytes]:
    """The requests that bind ``group`` to the socket: bind, copy the first ``copy_bytes`` of
    each packet (enough for any IP and transport header we read), and let the kernel gather
    up to ``batch`` messages or ``flush_centiseconds`` (default 0.1 s) into one datagram, so a
    busy log wakes the reader ten times a second rather than once per connection."""
    return [
        config_request(group, _attribute(_CFG_CMD, bytes([_CMD_BIND])), sequence=1),
        config_request(
            group,
            _attribute(_CFG_MODE, struct.pack("!IBB", copy_bytes, _COPY_PACKET, 0)),
            sequence=2,
        ),
        config_request(group, _attribute(_CFG_QTHRESH, struct.pack("!I", batch)), sequence=3),
        config_request(
            group, _attribute(_CFG_TIMEOUT, struct.pack("!I", flush_centiseconds)), sequence=4
        ),
    ]


def ack_error(data: bytes) -> int:
    """The errno of a netlink acknowledgement (0: success); -1 when ``data`` is no ack."""
    if len(data) < _HEADER.size + 4:
        return -1
    _, kind, _, _, _ = _HEADER.unpack_from(data)
    if kind != _NLMSG_ERROR:
        return -1
    error = int(struct.unpack_from("=i", data, _HEADER.size)[0])
    return -error


def _attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = start
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > end:
            break  # truncated: keep what was read
        found[kind & _ATTR_TYPE_MASK] = data[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


def parse_packet(payload: bytes) -> tuple[IPAddress, IPAddress, int, int | None, int | None]:
    """(source, destination, protocol, source port, destination port) of an IP packet's
    first bytes; ports are None for protocols without them or when the header is cut off.
    Raises ``ValueError`` for anything that is not IPv4 or IPv6. IPv6 extension headers are
    not followed (the sandbox's pods send none): the next-header value is the protocol."""
    if not payload:
        raise ValueError("empty payload")
    version = payload[0] >> 4
    source: IPAddress
    destination: IPAddress
    if version == 4:
        if len(payload) < 20:
            raise ValueError("truncated IPv4 header")
        header = (payload[0] & 0x0F) * 4
        protocol = payload[9]
        source = ipaddress.IPv4Address(payload[12:16])
        destination = ipaddress.IPv4Address(payload[16:20])
    elif version == 6:
        if len(payload) < 40:
            raise ValueError("truncated IPv6 header")
        header = 40
        protocol = payload[6]
        source = ipaddress.IPv6Address(payload[8:24])
        destination = ipaddress.IPv6Address(payload[24:40])
    else:
        raise ValueError(f"IP version {version}")
    if protocol in _PORTED and len(payload) >= header + 4:
        sport, dport = struct.unpack_from("!HH", payload, header)
        return source, destination, protocol, sport, dport
    return source, destination, protocol, None, None


def parse_messages(data: bytes) -> list[LoggedPacket]:
    """Every logged packet in one datagram read from the NFLOG socket (several netlink
    messages may share one); other messages and malformed packets are skipped."""
    packets = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            break
        end = offset + length
        if kind == (_SUBSYS_ULOG << 8) | _MSG_PACKET and length >= _HEADER.size + 4:
            attributes = _attributes(data, offset + _HEADER.size + 4, end)
            prefix = attributes.get(_ATTR_PREFIX, b"").split(b"\0", 1)[0].decode(errors="replace")
            try:
                source, destination, protocol, sport, dport = parse_packet(
                    attributes.get(_ATTR_PAYLOAD, b"")
                )
            except ValueError:
                pass
            else:
                packets.append(
                    LoggedPacket(
                        prefix=prefix,
                        source=source,
                        destination=destination,
                        protocol=protocol,
                        source_port=sport,
                        destination_port=dport,
                    )
                )
        offset += (length + 3) & ~3
    return packets
