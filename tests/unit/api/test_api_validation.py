"""Validation rules V01-V07 of docs/semantics.md, each pinned to its exact API-server field path.

Objects are built in memory (``inventory_from_objects``) so each test shows the whole manifest it
is about; the file corpus (``test_corpus_invalid``) covers the same rules with line numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.builders import policy_of as policy

from kubefence.errors import FieldError, ValidationError
from kubefence.sources.files import load_paths
from kubefence.sources.objects import OBJECTS_FILE, inventory_from_objects


def problems(*objects: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(ValidationError) as caught:
        inventory_from_objects(objects)
    return list(caught.value.problems)


def paths(*objects: dict[str, Any]) -> list[str]:
    return [p.path for p in problems(*objects)]


def ingress_port(port: dict[str, Any]) -> dict[str, Any]:
    return policy({"podSelector": {}, "ingress": [{"ports": [port]}]})


def ingress_peer(peer: Any) -> dict[str, Any]:
    return policy({"podSelector": {}, "ingress": [{"from": [peer]}]})


# --- V01 names ---------------------------------------------------------------------------------


def test_v01_policy_name_must_be_dns_subdomain() -> None:
    """An upper-case policy name is rejected at metadata.name, naming the object."""
    [problem] = problems(policy({"podSelector": {}}, name="Deny_All"))
    assert problem.path == "metadata.name"
    assert problem.object == "NetworkPolicy test/Deny_All"
    assert problem.file == OBJECTS_FILE
    assert "RFC 1123 subdomain" in problem.message


def test_v01_subdomain_allows_dots_but_namespace_is_a_label() -> None:
    """Dots are fine in a policy name but not in a namespace (a DNS-1123 label)."""
    inventory_from_objects([policy({"podSelector": {}}, name="allow.web")])
    assert paths(policy({"podSelector": {}}, namespace="team.a")) == ["metadata.namespace"]


def test_v01_namespace_object_name_is_a_dns_label() -> None:
    """A Namespace named over 63 characters is rejected at metadata.name."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a" * 64}}
    assert paths(ns) == ["metadata.name"]


def test_v01_name_is_required() -> None:
    """A policy without metadata.name is rejected (generateName cannot be resolved offline)."""
    obj = policy({"podSelector": {}})
    obj["metadata"] = {"generateName": "p-", "namespace": "test"}
    [problem] = problems(obj)
    assert problem.path == "metadata.name"
    assert "generateName" in problem.message


# --- V02 label selectors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["-app", "a/b/c", "/app", "example.com/", "Example.com/app", "a" * 64, "app name"],
)
def test_v02_invalid_label_keys_in_match_labels(key: str) -> None:
    """Keys that are not qualified names are rejected at the matchLabels path."""
    assert paths(policy({"podSelector": {"matchLabels": {key: "x"}}})) == [
        "spec.podSelector.matchLabels"
    ]


@pytest.mark.parametrize("key", ["app", "example.com/app", "app.kubernetes.io/name", "A_b.C-d"])
def test_v02_valid_label_keys_are_accepted(key: str) -> None:
    """Qualified names with and without a DNS prefix are accepted."""
    inventory_from_objects([policy({"podSelector": {"matchLabels": {key: "x"}}})])


@pytest.mark.parametrize("value", ["-x", "x-", "a b", "a" * 64, "ü"])
def test_v02_invalid_label_values(value: str) -> None:
    """Label values must be empty or <= 63 alphanumerics with inner '-_.'."""
    assert paths(policy({"podSelector": {"matchLabels": {"app": value}}})) == [
        "spec.podSelector.matchLabels"
    ]


def test_v02_empty_label_value_is_valid() -> None:
    """The empty string is a valid label value."""
    inventory_from_objects([policy({"podSelector": {"matchLabels": {"app": ""}}})])


@pytest.mark.parametrize("operator", ["In", "NotIn"])
def test_v02_in_and_notin_need_values(operator: str) -> None:
    """In/NotIn without values are rejected at matchExpressions[i].values."""
    sel = {"matchExpressions": [{"key": "app", "operator": operator}]}
    assert paths(ingress_peer({"podSelector": sel})) == [
        "spec.ingress[0].from[0].podSelector.matchExpressions[0].values"
    ]


@pytest.mark.parametrize("operator", ["Exists", "DoesNotExist"])
def test_v02_exists_and_doesnotexist_forbid_values(operator: str) -> None:
    """Exists/DoesNotExist with values are rejected at matchExpressions[i].values."""
    sel = {
        "matchExpressions": [
            {"key": "a", "operator": "Exists"},
            {"key": "app", "operator": operator, "values": ["x"]},
        ]
    }
    assert paths(policy({"podSelector": sel})) == ["spec.podSelector.matchExpressions[1].values"]


def test_v02_unknown_operator() -> None:
    """An operator outside In/NotIn/Exists/DoesNotExist is rejected at .operator."""
    sel = {"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["x"]}]}
    [problem] = problems(ingress_peer({"namespaceSelector": sel}))
    assert problem.path == "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].operator"
    assert "In, NotIn, Exists or DoesNotExist" in problem.message


def test_v02_expression_key_and_values_are_validated() -> None:
    """A bad expression key and a bad value are both reported, each at its own path."""
    sel = {"matchExpressions": [{"key": "bad key", "operator": "In", "values": ["ok", "no!"]}]}
    assert sorted(paths(policy({"podSelector": sel}))) == [
        "spec.podSelector.matchExpressions[0].key",
        "spec.podSelector.matchExpressions[0].values[1]",
    ]


# --- V03 ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["ICMP", "tcp", "HTTP"])
def test_v03_protocol_must_be_tcp_udp_or_sctp(protocol: str) -> None:
    """Protocols are case-sensitive and limited to TCP, UDP and SCTP."""
    assert paths(ingress_port({"protocol": protocol})) == ["spec.ingress[0].ports[0].protocol"]


def test_s18_container_and_service_ports_share_the_protocol_check() -> None:
    """A pod's container port and a service port with protocol ICMP are rejected at their own
    .protocol paths with the same message as a policy port; an absent protocol is TCP."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "test"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "ICMP"}],
                }
            ]
        },
    }
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "test"},
        "spec": {"ports": [{"port": 80, "protocol": "ICMP"}]},
    }
    found = problems(pod, service, ingress_port({"protocol": "ICMP"}))
    assert sorted(p.path for p in found) == [
        "spec.containers[0].ports[0].protocol",
        "spec.ingress[0].ports[0].protocol",
        "spec.ports[0].protocol",
    ]
    assert len({p.message for p in found}) == 1
    assert "supported values" in found[0].message
    pod["spec"]["containers"][0]["ports"][0].pop("protocol")
    service["spec"]["ports"][0].pop("protocol")
    inventory = inventory_from_objects([pod, service])
    assert str(inventory.pods[0].ports[0].protocol) == "TCP"
    assert str(inventory.services[0].ports[0].protocol) == "TCP"


@pytest.mark.parametrize("port", [0, -1, 65536, 100000])
def test_v03_numeric_port_range(port: int) -> None:
    """Numeric ports outside 1-65535 are rejected at .port."""
    assert paths(ingress_port({"port": port})) == ["spec.ingress[0].ports[0].port"]


@pytest.mark.parametrize(
    "name", ["HTTP", "http-alternative-1", "80", "-http", "http-", "web--http", "we_b", ""]
)
def test_v03_named_port_must_be_iana_service_name(name: str) -> None:
    """Named ports follow IANA service-name syntax (1-15, lowercase, a letter, no '--')."""
    assert set(paths(ingress_port({"port": name}))) == {"spec.ingress[0].ports[0].port"}


@pytest.mark.parametrize("name", ["http", "h2c", "x", "web-http-8080ab"])
def test_v03_valid_named_ports(name: str) -> None:
    """Valid service names are kept as names."""
    inv = inventory_from_objects([ingress_port({"port": name})])
    assert inv.policies[0].ingress[0].ports[0].port == name


def test_v03_endport_needs_a_port() -> None:
    """endPort without port is rejected at .endPort."""
    assert paths(ingress_port({"endPort": 90})) == ["spec.ingress[0].ports[0].endPort"]


def test_v03_endport_needs_a_numeric_port() -> None:
    """endPort with a named port is rejected at .endPort."""
    assert paths(ingress_port({"port": "http", "endPort": 90})) == [
        "spec.ingress[0].ports[0].endPort"
    ]


@pytest.mark.parametrize("end", [79, 65536])
def test_v03_endport_range(end: int) -> None:
    """endPort must be >= port and <= 65535."""
    assert paths(ingress_port({"port": 80, "endPort": end})) == ["spec.ingress[0].ports[0].endPort"]


def test_v03_endport_equal_to_port_is_valid() -> None:
    """port == endPort is a one-port range and is accepted."""
    inv = inventory_from_objects([ingress_port({"port": 80, "endPort": 80})])
    assert inv.policies[0].ingress[0].ports[0].end_port == 80


# --- V04 peers ---------------------------------------------------------------------------------


def test_v04_empty_peer_is_rejected() -> None:
    """A peer with no field at all is rejected at the peer's own path."""
    assert paths(ingress_peer({})) == ["spec.ingress[0].from[0]"]


@pytest.mark.parametrize("selector", ["podSelector", "namespaceSelector"])
def test_v04_ipblock_with_a_selector_is_rejected(selector: str) -> None:
    """ipBlock and a selector in one peer are rejected at the peer's path."""
    peer = {"ipBlock": {"cidr": "198.18.0.0/15"}, selector: {}}
    obj = policy({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}, peer]}]})
    [problem] = problems(obj)
    assert problem.path == "spec.egress[0].to[1]"
    assert "ipBlock" in problem.message


def test_v04_both_selectors_together_are_valid() -> None:
    """podSelector and namespaceSelector in one peer are the AND form, and valid (S13)."""
    inv = inventory_from_objects([ingress_peer({"podSelector": {}, "namespaceSelector": {}})])
    peer = inv.policies[0].ingress[0].peers[0]
    assert peer.pod_selector is not None
    assert peer.namespace_selector is not None


def test_v04_null_selector_counts_as_absent() -> None:
    """``podSelector: null`` is the same as no podSelector, so the peer is empty."""
    assert paths(ingress_peer({"podSelector": None})) == ["spec.ingress[0].from[0]"]


# --- V05 ipBlock -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cidr",
    ["198.18.0.0/33", "198.18.0.0", "not-a-cidr", "198.18.0.0/-1", "fd00::/129", "198.018.0.0/15"],
)
def test_v05_cidr_must_be_valid(cidr: str) -> None:
    """Invalid CIDRs are rejected at ipBlock.cidr."""
    assert paths(ingress_peer({"ipBlock": {"cidr": cidr}})) == [
        "spec.ingress[0].from[0].ipBlock.cidr"
    ]


def test_v05_cidr_is_required() -> None:
    """An ipBlock without cidr is rejected at ipBlock.cidr."""
    assert paths(ingress_peer({"ipBlock": {"except": ["198.18.0.0/24"]}})) == [
        "spec.ingress[0].from[0].ipBlock.cidr"
    ]


@pytest.mark.parametrize(
    "bad", ["198.19.0.0/24", "198.18.0.0/16", "198.18.0.0/15", "fd00::/64", "x"]
)
def test_v05_except_must_be_strictly_inside_cidr_of_same_family(bad: str) -> None:
    """Excepts outside, equal to, wider than or of the other family are rejected at except[i]."""
    peer = {"ipBlock": {"cidr": "198.18.0.0/16", "except": ["198.18.1.0/24", bad]}}
    assert paths(ingress_peer(peer)) == ["spec.ingress[0].from[0].ipBlock.except[1]"]


def test_v05_host_bits_are_masked_with_a_note() -> None:
    """A cidr with host bits is accepted as its network (like the API server), with a note."""
    inv = inventory_from_objects([ingress_peer({"ipBlock": {"cidr": "198.19.2.3/16"}})])
    block = inv.policies[0].ingress[0].peers[0].ip_block
    assert block is not None
    assert str(block.cidr) == "198.19.0.0/16"
    assert any("host bits" in note for note in inv.notes)


@pytest.mark.parametrize("cidr", ["198.19.0.0/16", "FD00::/48", "fd00:0:0::/48"])
def test_v05_canonical_cidr_has_no_host_bits_note(cidr: str) -> None:
    """A cidr written as its network (IPv6 in any letter case or spelling) gets no note."""
    inv = inventory_from_objects([ingress_peer({"ipBlock": {"cidr": cidr}})])
    assert not any("host bits" in note for note in inv.notes)


def test_v05_ipv6_block_with_except() -> None:
    """IPv6 blocks with a narrower IPv6 except are valid."""
    peer = {"ipBlock": {"cidr": "fd00::/48", "except": ["fd00:0:0:1::/64"]}}
    inv = inventory_from_objects([ingress_peer(peer)])
    block = inv.policies[0].ingress[0].peers[0].ip_block
    assert block is not None
    assert [str(e) for e in block.except_] == ["fd00:0:0:1::/64"]


# --- V06 policyTypes ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ingress", "Both", "All"])
def test_v06_unknown_policy_type(value: str) -> None:
    """policyTypes entries other than Ingress/Egress are rejected at policyTypes[i]."""
    assert paths(policy({"podSelector": {}, "policyTypes": ["Egress", value]})) == [
        "spec.policyTypes[1]"
    ]


def test_v06_duplicate_policy_type() -> None:
    """A repeated policy type is rejected at the repeat's index."""
    assert paths(policy({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]})) == [
        "spec.policyTypes[1]"
    ]


def test_v06_more_than_two_policy_types() -> None:
    """Three entries are rejected at spec.policyTypes itself."""
    obj = policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]})
    assert paths(obj) == ["spec.policyTypes"]


# --- V07 strict fields, apiVersion and kind ----------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"podSelector": {}, "ingres": []}, "spec.ingres"),
        ({"podSelector": {}, "ingress": [{"form": []}]}, "spec.ingress[0].form"),
        ({"podSelector": {}, "egress": [{"from": []}]}, "spec.egress[0].from"),
        ({"podSelector": {"matchLabel": {}}}, "spec.podSelector.matchLabel"),
        (
            {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "portEnd": 81}]}]},
            "spec.ingress[0].ports[0].portEnd",
        ),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "x": 1}]}},
            "spec.podSelector.matchExpressions[0].x",
        ),
    ],
)
def test_v07_unknown_fields_in_spec_are_reported(spec: dict[str, Any], path: str) -> None:
    """Strict field validation names the unknown field by its full path."""
    found = problems(policy(spec))
    assert path in [p.path for p in found]
    assert any("unknown field" in p.message for p in found)


def test_v07_unknown_top_level_field() -> None:
    """A misspelt ``spec`` is reported, not silently read as a policy with no spec."""
    obj = policy({"podSelector": {}})
    obj["specs"] = obj.pop("spec")
    assert paths(obj) == ["specs"]


@pytest.mark.parametrize("api_version", ["extensions/v1beta1", "networking.k8s.io/v1beta1", "v1"])
def test_v07_wrong_api_version_names_the_document(api_version: str) -> None:
    """A wrong apiVersion is reported at apiVersion with the document number."""
    obj = policy({"podSelector": {}})
    obj["apiVersion"] = api_version
    [problem] = problems({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}, obj)
    assert problem.path == "apiVersion"
    assert problem.object == "document 2"
    assert "networking.k8s.io/v1" in problem.message


def test_v07_missing_kind_and_api_version() -> None:
    """An object without apiVersion and kind reports both."""
    assert sorted(paths({"metadata": {"name": "x"}})) == ["apiVersion", "kind"]


def test_v07_all_problems_are_reported_at_once() -> None:
    """Problems across rules and objects are collected, not stopped at the first."""
    found = problems(
        policy({"podSelector": {}, "policyTypes": ["ingress"]}, name="a"),
        {**ingress_port({"port": 0}), "metadata": {"name": "b", "namespace": "test"}},
        {**ingress_peer({}), "metadata": {"name": "c", "namespace": "test"}},
    )
    assert [(p.object, p.path) for p in found] == [
        ("NetworkPolicy test/a", "spec.policyTypes[0]"),
        ("NetworkPolicy test/b", "spec.ingress[0].ports[0].port"),
        ("NetworkPolicy test/c", "spec.ingress[0].from[0]"),
    ]


def test_invalid_cluster_and_pod_ips_are_named_at_their_paths() -> None:
    """A bad clusterIP is rejected saying None is also accepted; a bad pod IP is rejected
    without that; a repeated valid address is kept once and "None" marks a headless service."""
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "test"},
        "spec": {"clusterIP": "198.18.0.300", "clusterIPs": ["None"]},
    }
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "test"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"podIP": "198.18.0.1", "podIPs": [{"ip": "198.18.0.1"}, {"ip": "fd00::zz"}]},
    }
    found = {p.path: p.message for p in problems(service, pod)}
    assert set(found) == {"spec.clusterIP", "status.podIPs[1].ip"}
    assert found["spec.clusterIP"].startswith("invalid value '198.18.0.300': ")
    assert found["spec.clusterIP"].endswith(" or None")
    assert not found["status.podIPs[1].ip"].endswith(" or None")
    service["spec"] = {"clusterIP": "None"}
    pod["status"]["podIPs"] = [{"ip": "198.18.0.1"}, {"ip": "fd00::1"}]
    inventory = inventory_from_objects([service, pod])
    assert inventory.services[0].cluster_ips == ()
    assert [str(ip) for ip in inventory.pods[0].ips] == ["198.18.0.1", "fd00::1"]


def test_v02_invalid_label_keys_are_named_as_label_keys() -> None:
    """A bad label key in metadata.labels and in a matchExpressions key is reported as
    "invalid label key '<key>': ..." at the map's path and at the expression's .key."""
    obj = policy({"podSelector": {"matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]}})
    obj["metadata"]["labels"] = {"-bad": "x"}
    found = {p.path: p.message for p in problems(obj)}
    assert set(found) == {"metadata.labels", "spec.podSelector.matchExpressions[0].key"}
    assert found["metadata.labels"].startswith("invalid label key '-bad': ")
    assert found["spec.podSelector.matchExpressions[0].key"].startswith(
        "invalid label key 'a/b/c': "
    )


def test_v05_ipv6_zones_are_refused_in_cidrs_and_pod_ips() -> None:
    """An IPv6 zone (``%eth0``) is neither a valid ipBlock cidr nor a valid pod IP, as for the
    API server's parsers."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "test"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"podIP": "fe80::1%eth0"},
    }
    assert sorted(paths(ingress_peer({"ipBlock": {"cidr": "fe80::%eth0/64"}}), pod)) == [
        "spec.ingress[0].from[0].ipBlock.cidr",
        "status.podIP",
    ]


def test_booleans_are_not_numbers_or_strings() -> None:
    """YAML ``true`` where a port (number or name) or a policy type (string) belongs is a type
    problem, not the number 1."""
    obj = policy(
        {"podSelector": {}, "policyTypes": [True], "ingress": [{"ports": [{"port": True}]}]}
    )
    found = {p.path: p.message for p in problems(obj)}
    assert found == {
        "spec.ingress[0].ports[0].port": "must be a port number or an IANA service name, "
        "not a boolean",
        "spec.policyTypes[0]": "must be a string, not a boolean",
    }


def test_repeated_selectors_in_a_file_are_each_checked(tmp_path: Path) -> None:
    """Selectors read from files are remembered by their text once read without a problem: a
    repeated valid one gives equal selectors, a repeated invalid one a problem at each place."""
    document = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {{name: {name}, namespace: test}}\n"
        "spec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n"
    )
    text = "---\n".join(
        document.format(name=name, app=app)
        for name, app in (("a", "web"), ("b", "web"), ("c", "-x"), ("d", "-x"))
    )
    path = tmp_path / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        load_paths([str(path)])
    assert [(p.object, p.path, p.line) for p in caught.value.problems] == [
        ("NetworkPolicy test/c", "spec.podSelector.matchLabels", 17),
        ("NetworkPolicy test/d", "spec.podSelector.matchLabels", 23),
    ]
    path.write_text(text.replace("-x", "api"), encoding="utf-8")
    policies = load_paths([str(path)]).policies
    assert [dict(p.pod_selector.match_labels) for p in policies] == [
        {"app": "web"},
        {"app": "web"},
        {"app": "api"},
        {"app": "api"},
    ]
