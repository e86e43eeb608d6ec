"""Parsing of ``conntrack -L`` output for strict mode (S25), and the matching delete command."""

from __future__ import annotations

import ipaddress

from kubefence.api import Protocol
from kubefence.dataplane.netns._conntrack import Flow, delete_argv, parse_conntrack

LISTING = "\n".join(
    [
        "tcp      6 431999 ESTABLISHED src=198.18.0.2 dst=198.18.0.4 sport=40312 dport=80"
        " src=198.18.0.4 dst=198.18.0.2 sport=80 dport=40312 [ASSURED] mark=0 use=1",
        "udp      17 28 src=198.18.0.3 dst=198.18.0.4 sport=5353 dport=53 [UNREPLIED]"
        " src=198.18.0.4 dst=198.18.0.3 sport=53 dport=5353 mark=0 use=1",
        "icmp     1 29 src=198.18.0.2 dst=198.18.0.3 type=8 code=0 id=7"
        " src=198.18.0.3 dst=198.18.0.2 type=0 code=0 id=7 mark=0 use=1",
        "tcp      6 118 TIME_WAIT src=fd00:6b66::c612:2 dst=fd00:6b66::c612:3 sport=1 dport=8080"
        " src=fd00:6b66::c612:3 dst=fd00:6b66::c612:2 sport=8080 dport=1 [ASSURED] mark=0 use=1",
        "garbage line",
        "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.",
    ]
)


def test_s25_parse_takes_the_original_direction() -> None:
    """Each flow is read from its original-direction tuple; ICMP and noise are skipped."""
    flows = parse_conntrack(LISTING.splitlines())
    assert flows == [
        Flow(
            Protocol.TCP,
            ipaddress.ip_address("198.18.0.2"),
            ipaddress.ip_address("198.18.0.4"),
            40312,
            80,
            "ESTABLISHED",
        ),
        Flow(
            Protocol.UDP,
            ipaddress.ip_address("198.18.0.3"),
            ipaddress.ip_address("198.18.0.4"),
            5353,
            53,
            "",
        ),
        Flow(
            Protocol.TCP,
            ipaddress.ip_address("fd00:6b66::c612:2"),
            ipaddress.ip_address("fd00:6b66::c612:3"),
            1,
            8080,
            "TIME_WAIT",
        ),
    ]


def test_s25_delete_names_exactly_one_flow() -> None:
    """The delete command pins protocol, family, both addresses and both ports."""
    flow = parse_conntrack(LISTING.splitlines())[2]
    argv = delete_argv(flow)
    assert argv[:2] == ["conntrack", "-D"]
    pairs = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert pairs == {
        "-f": "ipv6",
        "-p": "tcp",
        "--orig-src": "fd00:6b66::c612:2",
        "--orig-dst": "fd00:6b66::c612:3",
        "--orig-port-src": "1",
        "--orig-port-dst": "8080",
    }


def test_s25_delete_of_a_whole_connection_class_omits_the_source_port() -> None:
    """Flows differing only in source port share a verdict: one delete covers them all."""
    flow = parse_conntrack(LISTING.splitlines())[0]
    argv = delete_argv(flow, any_source_port=True)
    assert "--orig-port-src" not in argv
    assert argv[-2:] == ["--orig-port-dst", "80"]
    assert argv[argv.index("--orig-src") + 1] == "198.18.0.2"
