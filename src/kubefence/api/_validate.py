"""The API server's value checks: names, label keys and values, ports, CIDRs, protocols.

Why this module exists: these predicates are what the Kubernetes API server applies
(``k8s.io/apimachinery/pkg/util/validation`` and ``pkg/apis/networking/validation``), restated in
Python so that a manifest kubefence accepts is one a real cluster would accept. Each function
returns the messages saying what is wrong and what would be valid (empty: valid), like
their Go counterparts, so callers attach them to a field path. Results are cached: the same label
keys, values and names recur across thousands of objects.

Where we differ from the API server, on purpose:

- ``policyTypes`` with a duplicate entry (``[Ingress, Ingress]``) is rejected (docs/semantics.md
  V06); the API server only rejects more than two entries.
- An ``ipBlock.cidr`` with host bits set (``10.0.0.1/8``) is accepted and masked, as the API
  server does (it only warns since KEP-4858); the loader adds a note. IPv4 addresses with leading
  zeros (``010.0.0.0/8``), which the API server reads "sloppily", are rejected as ambiguous.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from kubefence.api._models import IPNetwork

__all__ = [
    "PROTOCOLS",
    "cidr_problems",
    "dns1035_label_problems",
    "dns1123_label_problems",
    "dns1123_subdomain_problems",
    "ip_problems",
    "label_value_problems",
    "parse_cidr",
    "port_name_problems",
    "port_number_problems",
    "port_problems",
    "qualified_name_problems",
]

PROTOCOLS = ("TCP", "UDP", "SCTP")

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_PORT_NAME_CHARS = re.compile(r"[-a-z0-9]+\Z")
_HAS_LETTER = re.compile(r"[a-z]")
_LEADING_ZERO_V4 = re.compile(r"(^|\.)0\d")


@lru_cache(maxsize=1 << 16)
def dns1123_label_problems(value: str) -> tuple[str, ...]:
    """RFC 1123 label: namespace names, container names."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.match(value):
        problems.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name')"
        )
    return tuple(problems)


@lru_cache(maxsize=1 << 16)
def dns1123_subdomain_problems(value: str) -> tuple[str, ...]:
    """RFC 1123 subdomain: names of pods, policies, workloads; label key prefixes."""
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        problems.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com')"
        )
    return tuple(problems)


@lru_cache(maxsize=1 << 16)
def dns1035_label_problems(value: str) -> tuple[str, ...]:
    """RFC 1035 label: Service names (they become DNS names and must start with a letter)."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1035_LABEL.match(value):
        problems.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character "
            "(e.g. 'my-name')"
        )
    return tuple(problems)


@lru_cache(maxsize=1 << 16)
def qualified_name_problems(value: str) -> tuple[str, ...]:
    """A label key: optional DNS subdomain prefix and '/', then a name of at most 63 chars."""
    parts = value.split("/")
    problems: list[str]
    if len(parts) == 1:
        name = parts[0]
        problems = []
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            problems = ["prefix part must be non-empty"]
        else:
            problems = [f"prefix part {m}" for m in dns1123_subdomain_problems(prefix)]
    else:
        return (
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character, with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.match(name):
        problems.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')"
        )
    return tuple(problems)


@lru_cache(maxsize=1 << 16)
def label_value_problems(value: str) -> tuple[str, ...]:
    """A label value: empty, or at most 63 alphanumeric/'-_.' chars starting and ending alnum."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if value and not _QUALIFIED_NAME.match(value):
        problems.append(
            "a valid label value must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'MyValue', 'my_value' or '12345')"
        )
    return tuple(problems)


@lru_cache(maxsize=1 << 16)
def port_number_problems(value: int) -> tuple[str, ...]:
    if 1 <= value <= 65535:
        return ()
    return ("must be between 1 and 65535, inclusive",)


@lru_cache(maxsize=1 << 16)
def port_name_problems(value: str) -> tuple[str, ...]:
    """An IANA service name (RFC 6335): what a named port must be."""
    problems = []
    if len(value) > 15:
        problems.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(value):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        problems.append("must not contain consecutive hyphens")
    if value and not _HAS_LETTER.search(value):
        problems.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return tuple(problems)


def port_problems(value: int | str) -> tuple[str, ...]:
    """A port given as a number or as a name (policy ports, service ``targetPort``)."""
    if isinstance(value, int):
        return port_number_problems(value)
    return port_name_problems(value)


def parse_cidr(value: str) -> IPNetwork | None:
    """The network of a CIDR string with host bits masked, or None when it is not a CIDR."""
    if "/" not in value or value != value.strip() or "%" in value:  # no IPv6 zones
        return None
    address, _, prefix = value.partition("/")
    if not prefix.isdigit() or (prefix != "0" and prefix.startswith("0")):
        return None
    if ":" not in address and _LEADING_ZERO_V4.search(address):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=1 << 16)
def cidr_problems(value: str) -> tuple[str, ...]:
    if parse_cidr(value) is None:
        return (
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64); IPv4 parts "
            "without leading zeros",
        )
    return ()


@lru_cache(maxsize=1 << 16)
def ip_problems(value: str) -> tuple[str, ...]:
    try:
        if "%" in value:  # an IPv6 zone: Go's net.ParseIP refuses it, Python would keep it
            raise ValueError(value)
        ipaddress.ip_address(value)
    except ValueError:
        return ("must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",)
    return ()
