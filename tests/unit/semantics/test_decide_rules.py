"""One or more tests per rule S01-S25 of docs/semantics.md, through ``decide`` and its ``Decision``.

Why this module exists: each rule of the checklist is pinned by a test that names it, on the
smallest cluster that shows it, and where the rule is about *why* (isolation, misses), the test
checks the structured reasons too, not only the verdict.
"""

from __future__ import annotations

import dataclasses

import pytest
from tests.builders import inventory, namespace, pod, policy

from kubefence.api import Labels, Operator, Protocol
from kubefence.errors import InputError
from kubefence.semantics import (
    ANY_INDEX,
    DEFAULT_SETTINGS,
    Direction,
    EndpointKind,
    MissReason,
    Reason,
    Settings,
    decide,
    is_backend,
)

HTTP = {"containerPort": 80, "name": "http"}


# --- selection and isolation ---------------------------------------------------------------------


def test_s01_policy_applies_only_in_its_namespace_to_selected_pods() -> None:
    """A policy isolates only pods of its own namespace that its podSelector picks; ``{}``
    picks every pod of that namespace."""
    inv = inventory(
        pod("a/web", app="web"),
        pod("a/db", app="db"),
        pod("b/web", app="web"),
        pod("c/x"),
        pod("c/y"),
        policy("a/deny-web", "podSelector: {matchLabels: {app: web}}"),
        policy("c/deny-all", "podSelector: {}"),
    )
    assert not decide(inv, "a/db", "a/web", port=80).allowed
    assert decide(inv, "a/web", "a/db", port=80).allowed
    assert decide(inv, "a/db", "b/web", port=80).allowed
    assert not decide(inv, "a/db", "c/x", port=80).allowed
    assert not decide(inv, "a/db", "c/y", port=80).allowed
    ingress = decide(inv, "a/db", "b/web", port=80).ingress
    assert ingress is not None
    assert not ingress.isolated


def test_s02_policy_types_default_from_egress_rules() -> None:
    """Without policyTypes a policy isolates Ingress, plus Egress only when ``egress`` has a
    rule; ``egress: []`` does not add Egress; explicit types win."""
    inv = inventory(
        pod("ns/with-rules", app="with-rules"),
        pod("ns/empty-list", app="empty-list"),
        pod("ns/explicit", app="explicit"),
        pod("ns/other", app="other"),
        policy(
            "ns/p1",
            "{podSelector: {matchLabels: {app: with-rules}}, egress: [{to: [{podSelector: {}}]}]}",
        ),
        policy("ns/p2", "{podSelector: {matchLabels: {app: empty-list}}, egress: []}"),
        policy(
            "ns/p3",
            "{podSelector: {matchLabels: {app: explicit}}, policyTypes: [Egress], "
            "egress: [{to: [{podSelector: {}}]}]}",
        ),
    )
    with_rules = decide(inv, "ns/with-rules", "ns/other", port=80)
    assert with_rules.egress is not None
    assert with_rules.egress.isolated
    assert not decide(inv, "ns/other", "ns/with-rules", port=80).allowed  # Ingress isolated too
    empty = decide(inv, "ns/empty-list", "203.0.113.1", port=80)
    assert empty.allowed
    assert empty.egress is not None
    assert not empty.egress.isolated
    explicit = decide(inv, "ns/other", "ns/explicit", port=80)
    assert explicit.allowed
    assert explicit.ingress is not None
    assert not explicit.ingress.isolated


def test_s03_a_direction_is_isolated_only_by_a_policy_of_that_type() -> None:
    """An Egress-only policy leaves its pods' ingress open, and the non-isolated side reports
    no isolating policy."""
    inv = inventory(
        pod("ns/a", app="a"),
        pod("ns/b", app="b"),
        policy("ns/egress-only", "{podSelector: {}, policyTypes: [Egress]}"),
    )
    decision = decide(inv, "203.0.113.1", "ns/a", port=80)
    assert decision.allowed
    assert decision.ingress is not None
    assert (decision.ingress.isolated, decision.ingress.isolating) == (False, ())
    out = decide(inv, "ns/a", "203.0.113.1", port=80)
    assert out.egress is not None
    assert out.egress.isolated
    assert not out.allowed
    assert [p.key for p in out.egress.isolating] == ["ns/egress-only"]


def test_s04_policies_add_up_and_every_admitting_rule_is_reported() -> None:
    """Any rule of any selecting policy admits (union); the decision lists each admitting
    (policy, rule) in policy order, whatever the order of the input."""
    docs = [
        pod("ns/server", app="server"),
        pod("ns/client", app="client"),
        policy("ns/zeta", "{podSelector: {matchLabels: {app: server}}, ingress: [{}]}"),
        policy("ns/alpha", "{podSelector: {matchLabels: {app: server}}, ingress: []}"),
        policy(
            "ns/beta",
            "{podSelector: {matchLabels: {app: server}}, "
            "ingress: [{ports: [{port: 81}]}, {from: [{podSelector: {}}]}]}",
        ),
    ]
    forward = decide(inventory(*docs), "ns/client", "ns/server", port=80)
    backward = decide(inventory(*reversed(docs)), "ns/client", "ns/server", port=80)
    assert forward == backward
    assert forward.allowed
    assert forward.ingress is not None
    assert [(a.policy.key, a.rule) for a in forward.ingress.admitted_by] == [
        ("ns/beta", 1),
        ("ns/zeta", 0),
    ]


def test_s05_external_ends_only_meet_the_other_sides_policies() -> None:
    """Pod to pod needs egress at the source AND ingress at the destination; from an external
    address only the destination's ingress applies, to one only the source's egress."""
    inv = inventory(
        pod("ns/a", app="a"),
        pod("ns/b", app="b"),
        policy("ns/a-no-egress", "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress]}"),
        policy("ns/b-no-ingress", "{podSelector: {matchLabels: {app: b}}, ingress: []}"),
    )
    a_to_b = decide(inv, "ns/a", "ns/b", port=80)
    assert a_to_b.egress is not None
    assert a_to_b.ingress is not None
    assert (a_to_b.allowed, a_to_b.egress.allowed, a_to_b.ingress.allowed) == (False, False, False)
    b_to_a = decide(inv, "ns/b", "ns/a", port=80)
    assert b_to_a.allowed
    inbound = decide(inv, "198.51.100.1", "ns/a", port=80)
    assert inbound.allowed
    assert inbound.source.kind is EndpointKind.EXTERNAL
    assert inbound.egress is not None
    assert not inbound.egress.applicable
    assert not decide(inv, "198.51.100.1", "ns/b", port=80).allowed
    assert not decide(inv, "ns/a", "198.51.100.1", port=80).allowed
    assert decide(inv, "ns/b", "198.51.100.1", port=80).allowed


def test_s06_replies_belong_to_the_allowed_connection() -> None:
    """Decisions are about who opens a connection (stateful, S06): a -> b is allowed although
    b may not open connections to a, because b's replies are part of a's connection."""
    inv = inventory(
        pod("ns/a", app="a"),
        pod("ns/b", app="b"),
        policy("ns/a-closed", "{podSelector: {matchLabels: {app: a}}, ingress: []}"),
    )
    assert decide(inv, "ns/a", "ns/b", port=80).allowed
    assert not decide(inv, "ns/b", "ns/a", port=80).allowed


def test_s07_a_pod_may_talk_to_itself_unless_the_setting_says_otherwise() -> None:
    """Self traffic is allowed by default whatever the policies and port (even an unknown
    name); with ``self_traffic_allowed=False`` the policies decide."""
    inv = inventory(pod("ns/a", app="a"), policy("ns/deny", "{podSelector: {}, ingress: []}"))
    allowed = decide(inv, "ns/a", "ns/a", port=80)
    assert (allowed.allowed, allowed.reason) == (True, Reason.SELF)
    assert decide(inv, "ns/a", "ns/a", port="no-such-name").allowed
    assert DEFAULT_SETTINGS.self_traffic_allowed
    strict = Settings(self_traffic_allowed=False)
    denied = decide(inv, "ns/a", "ns/a", port=80, settings=strict)
    assert (denied.allowed, denied.reason) == (False, Reason.POLICIES)


# --- rules and peers -----------------------------------------------------------------------------


def test_s08_empty_rule_list_allows_nothing_and_one_empty_rule_allows_all() -> None:
    """``ingress: []`` isolates and admits nothing (a miss with no rules); ``ingress: [{}]``
    admits every source and port through the implicit any-peer/any-port matchers."""
    nothing = inventory(pod("ns/a"), pod("ns/b"), policy("ns/p", "{podSelector: {}, ingress: []}"))
    denied = decide(nothing, "ns/a", "ns/b", port=80)
    assert not denied.allowed
    assert denied.ingress is not None
    assert [(m.policy.key, m.rules, m.nearest) for m in denied.ingress.misses] == [
        ("ns/p", (), None)
    ]
    everything = inventory(
        pod("ns/a"), pod("ns/b"), policy("ns/p", "{podSelector: {}, ingress: [{}]}")
    )
    allowed = decide(everything, "198.51.100.7", "ns/b", port=5000, protocol="SCTP")
    assert allowed.allowed
    assert allowed.ingress is not None
    admission = allowed.ingress.admitted_by[0]
    assert (admission.peer, admission.port) == (ANY_INDEX, ANY_INDEX)


def test_s09_missing_from_or_ports_match_everything() -> None:
    """A rule without ``from`` matches every peer; without ``ports`` every port and protocol."""
    inv = inventory(
        pod("ns/server", app="server"),
        pod("other/client"),
        policy(
            "ns/p",
            "{podSelector: {matchLabels: {app: server}}, ingress: [{ports: [{port: 443}]}]}",
        ),
        policy(
            "ns/q",
            "{podSelector: {matchLabels: {app: server}}, ingress: "
            "[{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}",
        ),
    )
    assert decide(inv, "other/client", "ns/server", port=443).allowed
    assert decide(inv, "203.0.113.3", "ns/server", port=443).allowed
    assert decide(inv, "10.1.1.1", "ns/server", port=9, protocol="UDP").allowed
    assert not decide(inv, "other/client", "ns/server", port=80).allowed


def test_s10_peer_and_port_must_match_in_the_same_rule() -> None:
    """Rule 0 admits a on 80 and rule 1 admits b on 443: a on 443 is denied, and the miss
    says rule 0 matched the peer but only lists port 80."""
    inv = inventory(
        pod("ns/server", app="server"),
        pod("ns/a", role="a"),
        pod("ns/b", role="b"),
        policy(
            "ns/p",
            """
            podSelector: {matchLabels: {app: server}}
            ingress:
            - from: [{podSelector: {matchLabels: {role: a}}}]
              ports: [{port: 80}]
            - from: [{podSelector: {matchLabels: {role: b}}}]
              ports: [{port: 443}]
            """,
        ),
    )
    assert decide(inv, "ns/a", "ns/server", port=80).allowed
    assert decide(inv, "ns/b", "ns/server", port=443).allowed
    denied = decide(inv, "ns/a", "ns/server", port=443)
    assert not denied.allowed
    assert denied.ingress is not None
    nearest = denied.ingress.misses[0].nearest
    assert nearest is not None
    assert (nearest.rule, nearest.peer_matched, nearest.port_matched) == (0, True, False)
    assert [(e.low, e.high, e.protocol) for e in nearest.ports] == [(80, 80, Protocol.TCP)]


def test_s11_pod_selector_alone_stays_in_the_policy_namespace() -> None:
    """A podSelector-only peer admits matching pods of the policy's namespace only; the miss
    names the expected and the actual namespace."""
    inv = inventory(
        pod("test/nginx", app="nginx"),
        pod("test/client", app="client"),
        pod("default/client", app="client"),
        policy(
            "test/p",
            "{podSelector: {matchLabels: {app: nginx}}, "
            "ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]}",
        ),
    )
    assert decide(inv, "test/client", "test/nginx", port=80).allowed
    denied = decide(inv, "default/client", "test/nginx", port=80)
    assert denied.ingress is not None
    rule = denied.ingress.misses[0].nearest
    assert rule is not None
    miss = rule.peers[0]
    assert (miss.reason, miss.expected_namespace, miss.namespace) == (
        MissReason.OTHER_NAMESPACE,
        "test",
        "default",
    )


def test_s12_namespace_selector_alone_admits_every_pod_of_matching_namespaces() -> None:
    """A namespaceSelector-only peer admits all pods of namespaces whose labels match; the miss
    for another namespace names the missing namespace label."""
    inv = inventory(
        namespace("staging", env="staging"),
        pod("staging/anything", app="whatever"),
        pod("default/client"),
        pod("test/nginx", app="nginx"),
        policy(
            "test/p",
            "{podSelector: {}, ingress: [{from: [{namespaceSelector: "
            "{matchLabels: {env: staging}}}]}]}",
        ),
    )
    assert decide(inv, "staging/anything", "test/nginx", port=80).allowed
    denied = decide(inv, "default/client", "test/nginx", port=80)
    assert denied.ingress is not None
    rule = denied.ingress.misses[0].nearest
    assert rule is not None
    miss = rule.peers[0]
    assert miss.reason is MissReason.LABELS
    assert [(u.key, u.values, u.actual) for u in miss.namespace_unmet] == [
        ("env", ("staging",), None)
    ]
    assert miss.pod_unmet == ()


def test_s13_both_selectors_in_one_peer_are_anded_two_peers_are_ored() -> None:
    """One peer with namespaceSelector and podSelector needs both; the same selectors as two
    peers admit either (the classic trap)."""
    common = [
        namespace("staging", env="staging"),
        pod("staging/nginx", app="nginx"),
        pod("staging/busybox", app="busybox"),
        pod("default/nginx", app="nginx"),
        pod("test/nginx", app="nginx"),
        pod("test/target", app="target"),
    ]
    and_peer = policy(
        "test/p",
        "{podSelector: {matchLabels: {app: target}}, ingress: [{from: [{namespaceSelector: "
        "{matchLabels: {env: staging}}, podSelector: {matchLabels: {app: nginx}}}]}]}",
    )
    or_peers = policy(
        "test/p",
        "{podSelector: {matchLabels: {app: target}}, ingress: [{from: [{namespaceSelector: "
        "{matchLabels: {env: staging}}}, {podSelector: {matchLabels: {app: nginx}}}]}]}",
    )
    anded, ored = inventory(*common, and_peer), inventory(*common, or_peers)
    sources = ["staging/nginx", "staging/busybox", "default/nginx", "test/nginx"]
    assert [decide(anded, s, "test/target", port=80).allowed for s in sources] == [
        True,
        False,
        False,
        False,
    ]
    assert [decide(ored, s, "test/target", port=80).allowed for s in sources] == [
        True,
        True,
        False,
        True,
    ]
    miss = decide(anded, "staging/busybox", "test/target", port=80).ingress
    assert miss is not None
    rule = miss.misses[0].nearest
    assert rule is not None
    assert [(u.key, u.actual) for u in rule.peers[0].pod_unmet] == [("app", "busybox")]
    assert rule.peers[0].namespace_unmet == ()


def test_s14_empty_selectors_match_everything_in_scope() -> None:
    """``namespaceSelector: {}`` is every namespace, ``podSelector: {}`` every pod of the
    policy's namespace; neither matches an external address."""
    inv = inventory(
        pod("a/x"),
        pod("b/y"),
        pod("ns/t1", app="t1"),
        pod("ns/t2", app="t2"),
        policy(
            "ns/all-namespaces",
            "{podSelector: {matchLabels: {app: t1}}, ingress: [{from: [{namespaceSelector: {}}]}]}",
        ),
        policy(
            "ns/own-namespace",
            "{podSelector: {matchLabels: {app: t2}}, ingress: [{from: [{podSelector: {}}]}]}",
        ),
    )
    assert decide(inv, "a/x", "ns/t1", port=80).allowed
    assert decide(inv, "b/y", "ns/t1", port=80).allowed
    assert not decide(inv, "a/x", "ns/t2", port=80).allowed
    assert decide(inv, "ns/t1", "ns/t2", port=80).allowed
    external = decide(inv, "203.0.113.1", "ns/t1", port=80)
    assert external.ingress is not None
    assert not external.allowed
    rule = external.ingress.misses[0].nearest
    assert rule is not None
    assert rule.peers[0].reason is MissReason.NOT_A_POD


IPBLOCK_POLICY = """
podSelector: {matchLabels: {app: server}}
ingress:
- from: [{ipBlock: {cidr: 198.18.0.0/24, except: [198.18.0.128/25]}}]
"""


def test_s15_ipblock_is_cidr_minus_excepts_for_pods_and_external_addresses() -> None:
    """ipBlock admits addresses in cidr and outside every except, pod IPs included; a pod
    without a known IP never matches; each miss says which case applied."""
    inv = inventory(
        pod("ns/server", ip="198.18.0.2", app="server"),
        pod("ns/inside", ip="198.18.0.10"),
        pod("ns/excepted", ip="198.18.0.200"),
        pod("ns/outside", ip="198.18.1.10"),
        pod("ns/no-ip"),
        policy("ns/p", IPBLOCK_POLICY),
    )
    assert decide(inv, "ns/inside", "ns/server", port=80).allowed
    assert decide(inv, "198.18.0.99", "ns/server", port=80).allowed
    reasons = {}
    for src in ("ns/excepted", "ns/outside", "ns/no-ip", "198.18.0.129"):
        decision = decide(inv, src, "ns/server", port=80)
        assert not decision.allowed
        assert decision.ingress is not None
        rule = decision.ingress.misses[0].nearest
        assert rule is not None
        reasons[src] = rule.peers[0].reason
    assert reasons == {
        "ns/excepted": MissReason.IN_EXCEPT,
        "ns/outside": MissReason.OUTSIDE_CIDR,
        "ns/no-ip": MissReason.NO_ADDRESS,
        "198.18.0.129": MissReason.IN_EXCEPT,
    }


def test_s15_setting_can_stop_ipblocks_matching_pods() -> None:
    """With ``ipblock_matches_pods=False`` an ipBlock only matches non-pod addresses."""
    inv = inventory(
        pod("ns/server", ip="198.18.0.2", app="server"),
        pod("ns/inside", ip="198.18.0.10"),
        policy("ns/p", IPBLOCK_POLICY),
    )
    settings = Settings(ipblock_matches_pods=False)
    decision = decide(inv, "ns/inside", "ns/server", port=80, settings=settings)
    assert not decision.allowed
    assert decision.ingress is not None
    rule = decision.ingress.misses[0].nearest
    assert rule is not None
    assert rule.peers[0].reason is MissReason.IPBLOCK_IGNORES_PODS
    assert decide(inv, "198.18.0.11", "ns/server", port=80, settings=settings).allowed


def test_s16_namespaces_match_by_their_metadata_name_label() -> None:
    """``kubernetes.io/metadata.name`` selects a namespace by name, declared or implicit."""
    inv = inventory(
        namespace("monitoring"),
        pod("monitoring/prom"),
        pod("implicit/prom"),
        pod("ns/app", app="app"),
        policy(
            "ns/p",
            "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: "
            "kubernetes.io/metadata.name, operator: In, values: [monitoring, implicit]}]}}]}]}",
        ),
    )
    assert decide(inv, "monitoring/prom", "ns/app", port=80).allowed
    assert decide(inv, "implicit/prom", "ns/app", port=80).allowed
    assert not decide(inv, "ns/app", "ns/app", port=80, settings=Settings(False)).allowed


def test_s17_match_expressions_and_match_labels_must_all_hold() -> None:
    """In, NotIn (absent key holds), Exists, DoesNotExist and matchLabels are ANDed; the miss
    lists exactly the requirements that failed, with the label's actual value."""
    inv = inventory(
        pod("ns/target", app="target"),
        pod("ns/good", tier="web", team="a"),
        pod("ns/bad", tier="db", env="prod", debug="1"),
        policy(
            "ns/p",
            """
            podSelector: {matchLabels: {app: target}}
            ingress:
            - from:
              - podSelector:
                  matchLabels: {team: a}
                  matchExpressions:
                  - {key: tier, operator: In, values: [web, api]}
                  - {key: env, operator: NotIn, values: [prod]}
                  - {key: team, operator: Exists}
                  - {key: debug, operator: DoesNotExist}
            """,
        ),
    )
    assert decide(inv, "ns/good", "ns/target", port=80).allowed
    denied = decide(inv, "ns/bad", "ns/target", port=80)
    assert denied.ingress is not None
    rule = denied.ingress.misses[0].nearest
    assert rule is not None
    assert [(u.key, u.operator, u.actual) for u in rule.peers[0].pod_unmet] == [
        ("team", Operator.IN, None),
        ("tier", Operator.IN, "db"),
        ("env", Operator.NOT_IN, "prod"),
        ("team", Operator.EXISTS, None),
        ("debug", Operator.DOES_NOT_EXIST, "1"),
    ]


# --- ports ---------------------------------------------------------------------------------------


def test_s18_protocol_defaults_to_tcp_and_only_three_exist() -> None:
    """A port entry without protocol is TCP; decide reads protocols in any case and rejects
    anything but TCP, UDP and SCTP with an InputError."""
    inv = inventory(
        pod("ns/a"),
        pod("ns/b", app="b"),
        policy("ns/p", "{podSelector: {matchLabels: {app: b}}, ingress: [{ports: [{port: 53}]}]}"),
    )
    assert decide(inv, "ns/a", "ns/b", port=53).allowed
    assert decide(inv, "ns/a", "ns/b", port=53, protocol="tcp").protocol is Protocol.TCP
    assert not decide(inv, "ns/a", "ns/b", port=53, protocol=Protocol.UDP).allowed
    with pytest.raises(InputError, match="ICMP"):
        decide(inv, "ns/a", "ns/b", port=53, protocol="ICMP")


def test_s19_protocol_without_port_matches_every_port_of_that_protocol() -> None:
    """``{protocol: UDP}`` admits every UDP port and no TCP port."""
    inv = inventory(
        pod("ns/a"),
        pod("ns/b", app="b"),
        policy(
            "ns/p", "{podSelector: {matchLabels: {app: b}}, ingress: [{ports: [{protocol: UDP}]}]}"
        ),
    )
    assert all(decide(inv, "ns/a", "ns/b", port=p, protocol="UDP").allowed for p in (1, 53, 65535))
    assert not decide(inv, "ns/a", "ns/b", port=53).allowed


def test_s20_end_port_range_is_inclusive() -> None:
    """``port: 32000, endPort: 32768`` admits both ends and nothing outside."""
    inv = inventory(
        pod("ns/a"),
        pod("ns/b", app="b"),
        policy(
            "ns/p",
            "{podSelector: {matchLabels: {app: b}}, ingress: [{ports: "
            "[{port: 32000, endPort: 32768}]}]}",
        ),
    )
    verdicts = [decide(inv, "ns/a", "ns/b", port=p).allowed for p in (31999, 32000, 32768, 32769)]
    assert verdicts == [False, True, True, False]


def test_s21_named_ports_resolve_per_destination_by_name_and_protocol() -> None:
    """``http`` is 80 on one pod and 8080 on another; a UDP name does not match TCP; an asked
    name the destination lacks, or any name towards an address, is UNRESOLVED_PORT."""
    inv = inventory(
        pod("ns/client"),
        pod("ns/a", app="web", ports=(HTTP,)),
        pod("ns/b", app="web", ports=({"containerPort": 8080, "name": "http"},)),
        pod(
            "ns/dns",
            app="web",
            ports=({"containerPort": 53, "name": "dns", "protocol": "UDP"},),
        ),
        policy(
            "ns/p",
            "{podSelector: {matchLabels: {app: web}}, ingress: [{ports: "
            "[{port: http}, {port: dns, protocol: TCP}]}]}",
        ),
    )
    assert decide(inv, "ns/client", "ns/a", port=80).allowed
    assert not decide(inv, "ns/client", "ns/a", port=8080).allowed
    assert decide(inv, "ns/client", "ns/b", port=8080).allowed
    assert not decide(inv, "ns/client", "ns/b", port=80).allowed
    by_name = decide(inv, "ns/client", "ns/b", port="http")
    assert (by_name.allowed, by_name.port, by_name.port_name) == (True, 8080, "http")
    assert not decide(inv, "ns/client", "ns/dns", port=53, protocol="UDP").allowed
    unknown = decide(inv, "ns/client", "ns/a", port="grpc")
    assert (unknown.allowed, unknown.reason, unknown.port) == (False, Reason.UNRESOLVED_PORT, None)
    wrong_protocol = decide(inv, "ns/client", "ns/dns", port="dns", protocol="TCP")
    assert wrong_protocol.reason is Reason.UNRESOLVED_PORT
    to_ip = decide(inv, "ns/client", "203.0.113.1", port="http")
    assert (to_ip.allowed, to_ip.reason) == (False, Reason.UNRESOLVED_PORT)


def test_s21_named_port_in_egress_resolves_at_the_peer_and_never_matches_an_address() -> None:
    """An egress rule's named port resolves against the destination pod; towards an ipBlock or
    external destination it matches nothing (the port entry reports no resolution)."""
    inv = inventory(
        pod("ns/client", app="client"),
        pod("ns/api", ports=({"containerPort": 9000, "name": "api"},)),
        policy(
            "ns/p",
            "{podSelector: {matchLabels: {app: client}}, policyTypes: [Egress], egress: "
            "[{ports: [{port: api}]}]}",
        ),
    )
    assert decide(inv, "ns/client", "ns/api", port=9000).allowed
    denied = decide(inv, "ns/client", "203.0.113.1", port=9000)
    assert not denied.allowed
    assert denied.egress is not None
    rule = denied.egress.misses[0].nearest
    assert rule is not None
    assert [(e.name, e.resolved, e.matched) for e in rule.ports] == [("api", None, False)]


def test_s21_first_declared_wins_on_duplicate_names() -> None:
    """Two containers declaring the same name and protocol: the first declaration wins."""
    duplicate = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "dup", "namespace": "ns", "labels": {"app": "dup"}},
        "spec": {
            "containers": [
                {"name": "one", "image": "i", "ports": [{"containerPort": 81, "name": "web"}]},
                {"name": "two", "image": "i", "ports": [{"containerPort": 82, "name": "web"}]},
            ]
        },
    }
    inv = inventory(
        pod("ns/client"),
        duplicate,
        policy(
            "ns/p", "{podSelector: {matchLabels: {app: dup}}, ingress: [{ports: [{port: web}]}]}"
        ),
    )
    assert decide(inv, "ns/client", "ns/dup", port="web").port == 81
    assert decide(inv, "ns/client", "ns/dup", port=81).allowed
    assert not decide(inv, "ns/client", "ns/dup", port=82).allowed


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: web-port}
  - {name: admin, port: 8443, targetPort: 9443}
"""


def test_s22_services_are_decided_per_backend_after_translation() -> None:
    """A ClusterIP (or ``svc:ns/name``) destination becomes its selected pods on the target
    port: policies see container port 8080 (named ``web-port``), never service port 80."""
    inv = inventory(
        SERVICE,
        pod("ns/client", app="client"),
        pod(
            "ns/web-1",
            ip="198.18.0.11",
            app="web",
            ports=({"containerPort": 8080, "name": "web-port"},),
        ),
        pod(
            "ns/web-2",
            ip="198.18.0.12",
            app="web",
            ports=({"containerPort": 8080, "name": "web-port"},),
        ),
        policy(
            "ns/p",
            "{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 8080}]}]}",
        ),
    )
    decision = decide(inv, "ns/client", "10.96.0.10", port=80)
    assert (decision.allowed, decision.reason, decision.destination.kind) == (
        True,
        Reason.SERVICE,
        EndpointKind.SERVICE,
    )
    assert [(b.destination.name, b.port, b.allowed) for b in decision.backends] == [
        ("ns/web-1", 8080, True),
        ("ns/web-2", 8080, True),
    ]
    admin = decide(inv, "ns/client", "svc:ns/web", port="admin")
    assert not admin.allowed
    assert [b.port for b in admin.backends] == [9443, 9443]
    assert decide(inv, "ns/client", "svc:ns/web", port=81).reason is Reason.UNRESOLVED_PORT


def test_s22_a_service_is_allowed_only_if_every_backend_is() -> None:
    """When one backend refuses, the Service connection may land there, so it is not allowed;
    a Service selecting no pod answers NO_BACKENDS."""
    inv = inventory(
        SERVICE,
        pod("ns/client"),
        pod(
            "ns/web-1", app="web", tier="open", ports=({"containerPort": 8080, "name": "web-port"},)
        ),
        pod("ns/web-2", app="web", ports=({"containerPort": 8080, "name": "web-port"},)),
        policy("ns/p", "{podSelector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}}"),
    )
    decision = decide(inv, "ns/client", "svc:ns/web", port=80)
    assert not decision.allowed
    assert [b.allowed for b in decision.backends] == [True, False]
    empty = inventory(SERVICE, pod("ns/client"))
    assert decide(empty, "ns/client", "svc:ns/web", port=80).reason is Reason.NO_BACKENDS


def test_s22_is_backend_means_same_namespace_and_a_non_empty_selector_matching() -> None:
    """``is_backend``: a Service sends to pods of its own namespace its selector matches; a
    Service with no selector or an empty one has no backends (endpoints managed by hand)."""
    inv = inventory(
        SERVICE,
        pod("ns/web", app="web"),
        pod("ns/db", app="db"),
        pod("other/web", app="web"),
    )
    (service,) = inv.services
    assert [p.key for p in inv.pods if is_backend(service, p)] == ["ns/web"]
    for selector in (None, Labels()):
        bare = dataclasses.replace(service, selector=selector)
        assert not any(is_backend(bare, p) for p in inv.pods)


# --- special endpoints ---------------------------------------------------------------------------


def test_s23_host_network_pods_are_neither_selected_nor_matched_as_pods() -> None:
    """A hostNetwork pod is not isolated by ``podSelector: {}`` and not admitted by a pod peer,
    but its (node) address can match an ipBlock; the setting makes it an ordinary pod."""
    inv = inventory(
        pod("ns/agent", ip="192.0.2.10", host_network=True, node="n2", app="agent"),
        pod("ns/web", ip="198.18.0.2", node="n1", app="web"),
        policy(
            "ns/p",
            "{podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {app: agent}}}]}, "
            "{from: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 9100}]}]}",
        ),
    )
    to_agent = decide(inv, "ns/web", "ns/agent", port=22)
    assert to_agent.allowed
    assert to_agent.reason is Reason.HOST_NETWORK
    assert to_agent.ingress is not None
    assert not to_agent.ingress.applicable
    denied = decide(inv, "ns/agent", "ns/web", port=80)
    assert not denied.allowed
    assert denied.ingress is not None
    rule = denied.ingress.misses[0].rules[0]
    assert rule.peers[0].reason is MissReason.HOST_NETWORK
    assert decide(inv, "ns/agent", "ns/web", port=9100).allowed  # its address, via ipBlock
    selectable = Settings(host_network_selectable=True)
    assert decide(inv, "ns/agent", "ns/web", port=80, settings=selectable).allowed
    assert not decide(inv, "ns/web", "ns/agent", port=22, settings=selectable).allowed


def test_s24_traffic_from_the_pods_own_node_is_allowed() -> None:
    """``node:NAME``, a node IP (learnt from hostNetwork pods) or a hostNetwork pod on the
    destination's node reaches it despite a deny-all; another node does not; the setting off
    makes the node an ordinary outside address."""
    inv = inventory(
        pod("kube-system/proxy", ip="192.0.2.1", host_network=True, node="n1"),
        pod("ns/web", ip="198.18.0.2", node="n1", app="web"),
        policy("ns/deny", "{podSelector: {}, ingress: []}"),
    )
    for source in ("node:n1", "192.0.2.1", "kube-system/proxy"):
        decision = decide(inv, source, "ns/web", port=8080)
        assert (decision.allowed, decision.reason) == (True, Reason.FROM_NODE), source
    assert decide(inv, "192.0.2.1", "ns/web", port=80).source.name == "node:n1"
    assert not decide(inv, "node:n2", "ns/web", port=80).allowed
    off = Settings(allow_from_node=False)
    assert not decide(inv, "node:n1", "ns/web", port=80, settings=off).allowed


def test_s25_cutting_established_connections_is_a_data_plane_setting() -> None:
    """Strict cutting on a new deny is the documented default and a setting; it belongs to the
    data plane, so it never changes a decision about a new connection."""
    assert DEFAULT_SETTINGS.cut_established_on_deny is True
    inv = inventory(pod("ns/a"), pod("ns/b"), policy("ns/p", "{podSelector: {}, ingress: []}"))
    keep = dataclasses.replace(DEFAULT_SETTINGS, cut_established_on_deny=False)
    for settings in (DEFAULT_SETTINGS, keep):
        assert not decide(inv, "ns/a", "ns/b", port=80, settings=settings).allowed


def test_s05_s15_address_family_of_an_address_endpoint_picks_the_pods_address() -> None:
    """Towards an IPv6 address a dual-stack pod is matched by its IPv6 address, so a v6
    ipBlock admits it and a v4 one does not."""
    inv = inventory(
        pod("ns/client", ips=("198.18.0.5", "fd00::5")),
        pod("ns/server", ips=("198.18.0.2", "fd00::2"), app="server"),
        policy(
            "ns/p",
            "{podSelector: {matchLabels: {app: server}}, ingress: [{from: [{ipBlock: "
            "{cidr: 'fd00::/64'}}]}]}",
        ),
    )
    v6 = decide(inv, "ns/client", "fd00::2", port=80)
    assert v6.allowed
    assert str(v6.source.address) == "fd00::5"
    assert not decide(inv, "ns/client", "198.18.0.2", port=80).allowed
    assert decide(inv, "ns/client", "ns/server", port=80).allowed  # any of its IPs


def test_direction_of_each_side_is_recorded() -> None:
    """The egress side is the source's, the ingress side the destination's."""
    inv = inventory(pod("ns/a"), pod("ns/b"))
    decision = decide(inv, "ns/a", "ns/b", port=80)
    assert decision.egress is not None
    assert decision.ingress is not None
    assert (decision.egress.direction, decision.egress.endpoint) == (Direction.EGRESS, "ns/a")
    assert (decision.ingress.direction, decision.ingress.endpoint) == (Direction.INGRESS, "ns/b")
