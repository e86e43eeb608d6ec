"""``restrict_to_family``: the cluster as packets of one address family see it.

Why this module exists: on dual-stack pods an ipBlock matches a pod when any of its addresses
does; restricted to one family, the verdict on a pod name must be the verdict a packet of that
family gets, i.e. the verdict on the two addresses of that family.
"""

from __future__ import annotations

import ipaddress

import pytest
from tests.builders import pod, policy

from kubefence.api import Inventory, restrict_to_family
from kubefence.semantics import decide
from kubefence.sources.objects import inventory_from_objects

POLICY = """
podSelector: {matchLabels: {app: db}}
ingress:
- from: [{ipBlock: {cidr: 198.18.1.0/24}}, {ipBlock: {cidr: "fd00:2::/64"}}]
"""


def _cluster() -> Inventory:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {
            "selector": {"app": "db"},
            "ipFamilies": ["IPv4", "IPv6"],
            "clusterIP": "198.18.200.1",
            "clusterIPs": ["198.18.200.1", "fd00:200::1"],
            "ports": [{"port": 5432}],
        },
    }
    return inventory_from_objects(
        [
            pod("shop/v4-net", ips=("198.18.1.5", "fd00:1::5")),  # only its IPv4 is in a block
            pod("shop/v6-net", ips=("198.18.9.5", "fd00:2::5")),  # only its IPv6 is in a block
            pod("shop/v4-only", ips=("198.18.1.6",)),
            pod("shop/unknown"),
            pod("shop/db", ips=("198.18.1.9", "fd00:2::9"), app="db"),
            policy("shop/db-ingress", POLICY),
            service,
        ]
    )


@pytest.mark.parametrize("family", [4, 6])
def test_each_pod_and_service_keeps_only_its_addresses_of_the_family(family: int) -> None:
    """Addresses of the other family are dropped; everything else is the same object."""
    full = _cluster()
    restricted = restrict_to_family(full, family)
    for before, after in zip(full.pods, restricted.pods, strict=True):
        assert after.ips == tuple(ip for ip in before.ips if ip.version == family)
        assert (after.key, after.labels, after.ports) == (before.key, before.labels, before.ports)
    (service,) = restricted.services
    assert [ip.version for ip in service.cluster_ips] == [family]
    assert restricted.policies == full.policies
    assert restricted.namespaces == full.namespaces
    unknown = restricted.pod_by_key["shop/unknown"]
    assert unknown is full.pod_by_key["shop/unknown"]  # nothing to drop: the same object


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("src", ["shop/v4-net", "shop/v6-net"])
def test_s15_verdict_on_names_is_the_verdict_on_addresses_of_the_family(
    family: int, src: str
) -> None:
    """Restricted to a family, a dual-stack pod matches an ipBlock exactly when its address of
    that family does: the same verdict as deciding on the two addresses of the family."""
    full = _cluster()
    restricted = restrict_to_family(full, family)
    address = {p.key: p.ips for p in restricted.pods}
    by_name = decide(restricted, src, "shop/db", port=5432).allowed
    by_address = decide(full, str(address[src][0]), str(address["shop/db"][0]), port=5432).allowed
    assert by_name is by_address
    expected = (src == "shop/v4-net") == (family == 4)
    assert by_name is expected
    assert decide(full, src, "shop/db", port=5432).allowed  # any address: both match


def test_a_pod_without_an_address_of_the_family_matches_no_ip_block() -> None:
    """An IPv4-only pod sends no IPv6 packet an ipBlock could admit; selectors are unaffected."""
    restricted = restrict_to_family(_cluster(), 6)
    assert restricted.pod_by_key["shop/v4-only"].ips == ()
    assert not decide(restricted, "shop/v4-only", "shop/db", port=5432).allowed
    assert decide(restrict_to_family(_cluster(), 4), "shop/v4-only", "shop/db", port=5432).allowed


def test_rejects_a_family_that_is_not_4_or_6() -> None:
    """Families are numbered as ``ipaddress`` numbers IP versions; anything else is a bug."""
    assert ipaddress.ip_address("fd00::1").version == 6
    with pytest.raises(ValueError, match="family must be 4 or 6"):
        restrict_to_family(_cluster(), 5)
