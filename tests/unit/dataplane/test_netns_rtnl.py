"""The rtnetlink messages that configure a pod: byte layouts of linux/rtnetlink.h."""

from __future__ import annotations

import ipaddress
import socket
import struct

from kubefence.dataplane.netns._rtnl import (
    IFA_F_NODAD,
    RT_SCOPE_LINK,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    add_address,
    add_route,
    attribute,
    message,
    set_up,
)


def _attributes(data: bytes) -> dict[int, bytes]:
    found = {}
    while data:
        length, kind = struct.unpack_from("=HH", data)
        found[kind] = data[4:length]
        data = data[length + (-length % 4) :]
    return found


def test_attributes_are_padded_to_four_bytes() -> None:
    """An attribute's length excludes the padding; the next one starts 4-byte aligned."""
    encoded = attribute(1, b"\x01\x02\x03\x04\x05")
    assert struct.unpack_from("=HH", encoded) == (9, 1)
    assert len(encoded) == 12


def test_message_header_carries_total_length_type_flags_and_sequence() -> None:
    """nlmsghdr: 16 bytes of length, type, flags, sequence, port id."""
    encoded = message(RTM_NEWLINK, 0x5, 7, b"x" * 16)
    assert struct.unpack_from("=IHHII", encoded) == (32, RTM_NEWLINK, 0x5, 7, 0)


def test_link_up_sets_and_masks_only_the_up_flag() -> None:
    """ifinfomsg with IFF_UP in both flags and change: nothing else is touched."""
    kind, body = set_up(3)
    assert kind == RTM_NEWLINK
    family, _, index, flags, change = struct.unpack("=BxHiII", body)
    assert (family, index, flags, change) == (socket.AF_UNSPEC, 3, 1, 1)


def test_ipv6_address_skips_duplicate_detection() -> None:
    """The pod's /128 is usable at once (IFA_F_NODAD); local and address attributes match."""
    address = ipaddress.IPv6Address("fd00:6b66::c612:2")
    kind, body = add_address(2, address, 128)
    assert kind == RTM_NEWADDR
    family, prefix, flags, _, index = struct.unpack_from("=BBBBI", body)
    assert (family, prefix, flags, index) == (socket.AF_INET6, 128, IFA_F_NODAD, 2)
    attributes = _attributes(body[8:])
    assert set(attributes.values()) == {address.packed}


def test_routes_link_scope_host_route_and_default_via_gateway() -> None:
    """169.254.1.1 dev eth0 scope link; default via 169.254.1.1; default via fe80::1."""
    gateway = ipaddress.IPv4Address("169.254.1.1")
    kind, body = add_route(2, destination=gateway)
    assert kind == RTM_NEWROUTE
    family, dst_len, _, _, table, _, scope, _, _ = struct.unpack_from("=BBBBBBBBI", body)
    assert (family, dst_len, table, scope) == (socket.AF_INET, 32, 254, RT_SCOPE_LINK)
    attributes = _attributes(body[12:])
    assert attributes[RTA_DST] == gateway.packed
    assert attributes[RTA_OIF] == struct.pack("=i", 2)

    _, body = add_route(2, gateway=ipaddress.IPv6Address("fe80::1"))
    family, dst_len, *_ = struct.unpack_from("=BBBBBBBBI", body)
    assert (family, dst_len) == (socket.AF_INET6, 0)
    assert _attributes(body[12:])[RTA_GATEWAY] == ipaddress.IPv6Address("fe80::1").packed
