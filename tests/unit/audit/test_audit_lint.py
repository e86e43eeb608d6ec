"""Lint findings KF001–KF013 (KF014–KF018: test_audit_tiers): each has a positive case (reported)
and a negative case (quiet)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from kubefence.api import (
    ContainerPort,
    Inventory,
    IPBlock,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Origin,
    Peer,
    Pod,
    PolicyPort,
    PolicyType,
    Protocol,
    Rule,
    Service,
)
from kubefence.audit import (
    DEFAULT_SERVICE_CIDRS,
    RULES,
    RULES_BY_ID,
    Finding,
    LintOptions,
    Severity,
    lint,
)

ALL = LabelSelector()
ING = (PolicyType.INGRESS,)
EGR = (PolicyType.EGRESS,)
BOTH = (PolicyType.INGRESS, PolicyType.EGRESS)


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=Labels(labels))


def ns(name: str, **labels: str) -> Namespace:
    return Namespace(
        name=name,
        labels=Labels({"kubernetes.io/metadata.name": name, **labels}),
        origin=Origin("ns.yaml", 1),
    )


def pod(
    namespace: str,
    name: str,
    *,
    ip: str | None = None,
    ports: Sequence[ContainerPort] = (),
    **labels: str,
) -> Pod:
    return Pod(
        namespace=namespace,
        name=name,
        labels=Labels(labels),
        ports=tuple(ports),
        ips=(ipaddress.ip_address(ip),) if ip else (),
    )


def policy(
    name: str,
    *,
    namespace: str = "a",
    selector: LabelSelector = ALL,
    types: tuple[PolicyType, ...] = ING,
    ingress: Sequence[Rule] = (),
    egress: Sequence[Rule] = (),
    file: str = "p.yaml",
    line: int = 1,
) -> NetworkPolicy:
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=selector,
        policy_types=types,
        ingress=tuple(ingress),
        egress=tuple(egress),
        origin=Origin(file, line),
        lines={"spec.ingress[0]": line + 5, "spec.ingress[0].from[1]": line + 8},
    )


def block(cidr: str, *excepts: str) -> Peer:
    return Peer(
        ip_block=IPBlock(
            ipaddress.ip_network(cidr), tuple(ipaddress.ip_network(e) for e in excepts)
        )
    )


def tcp(port: int | str) -> PolicyPort:
    return PolicyPort(Protocol.TCP, port)


DNS_RULE = Rule(
    peers=(
        Peer(
            namespace_selector=sel(**{"kubernetes.io/metadata.name": "kube-system"}),
            pod_selector=sel(**{"k8s-app": "kube-dns"}),
        ),
    ),
    ports=(PolicyPort(Protocol.UDP, 53), PolicyPort(Protocol.TCP, 53)),
)


def ids(
    *,
    namespaces: Sequence[Namespace] = (),
    pods: Sequence[Pod] = (),
    policies: Sequence[NetworkPolicy] = (),
    services: Sequence[Service] = (),
    rule: str,
    options: LintOptions | None = None,
) -> list[Finding]:
    inventory = Inventory.of(
        namespaces=list(namespaces),
        pods=list(pods),
        policies=list(policies),
        services=list(services),
    )
    return [f for f in lint(inventory, options=options) if f.rule == rule]


# Addresses in tests lie in 198.18.0.0/15: pods in 198.18.0.0/16, Services in 198.19.0.0/16
# (given as LintOptions.service_cidrs where a test needs a Service range).
SERVICE_RANGE = ipaddress.ip_network("198.19.0.0/16")
SERVICES = LintOptions(service_cidrs=(SERVICE_RANGE,))


WEB = pod("a", "web", ip="198.18.0.5", ports=[ContainerPort(8080, Protocol.TCP, "http")], app="web")
DB = pod("a", "db", ip="198.18.0.6", app="db")


def test_catalog_ids_are_unique_stable_and_documented() -> None:
    """Every rule id is KFnnn, unique, and carries a title, description and suggested fix."""
    assert [r.id for r in RULES] == sorted({r.id for r in RULES})
    assert all(r.id.startswith("KF") and r.title and r.description and r.fix for r in RULES)
    assert RULES_BY_ID["KF001"].name == "and-or-near-miss"


# --- KF001 AND/OR near-miss (S13) -------------------------------------------------------------


def test_kf001_s13_namespace_only_item_next_to_pod_only_item_is_reported() -> None:
    """Two separate items (namespaceSelector-only, podSelector-only) are flagged at the first."""
    rule = Rule(peers=(Peer(namespace_selector=sel(team="x")), Peer(pod_selector=sel(app="c"))))
    found = ids(policies=[policy("p", ingress=[rule])], rule="KF001")
    assert len(found) == 1
    assert found[0].path == "spec.ingress[0].from[0]"
    assert found[0].line == 6  # nearest enclosing path with a line: spec.ingress[0]
    assert "ORed" in found[0].message


def test_kf001_s13_selectors_in_one_item_are_quiet() -> None:
    """The AND form (both selectors in one item) is what the user meant: no finding."""
    rule = Rule(peers=(Peer(namespace_selector=sel(team="x"), pod_selector=sel(app="c")),))
    assert ids(policies=[policy("p", ingress=[rule])], rule="KF001") == []


# --- KF002 policy selects no pod --------------------------------------------------------------


def test_kf002_policy_selecting_no_pod_is_reported() -> None:
    """A podSelector matching none of the namespace's pods is reported at spec.podSelector."""
    found = ids(pods=[WEB], policies=[policy("p", selector=sel(app="wbe"))], rule="KF002")
    assert [f.path for f in found] == ["spec.podSelector"]
    assert "{app=wbe}" in found[0].message


def test_kf002_policy_selecting_a_pod_or_input_without_pods_is_quiet() -> None:
    """A selector matching a pod, or an input with no pods at all, gives no finding."""
    assert ids(pods=[WEB], policies=[policy("p", selector=sel(app="web"))], rule="KF002") == []
    assert ids(policies=[policy("p", selector=sel(app="wbe"))], rule="KF002") == []


# --- KF003 peer matches nothing ---------------------------------------------------------------


def test_kf003_peer_with_unknown_namespace_or_pod_labels_is_reported() -> None:
    """A namespaceSelector matching no namespace and a podSelector matching no pod both report."""
    rule = Rule(
        peers=(Peer(namespace_selector=sel(team="nobody")), Peer(pod_selector=sel(app="x")))
    )
    found = ids(
        namespaces=[ns("a")], pods=[WEB], policies=[policy("p", ingress=[rule])], rule="KF003"
    )
    assert [f.path for f in found] == ["spec.ingress[0].from[0]", "spec.ingress[0].from[1]"]
    assert "matches none of the 1 namespaces" in found[0].message
    assert "matches no pod in namespace a" in found[1].message


def test_kf003_peer_matching_a_pod_is_quiet() -> None:
    """Peers that match at least one pod are not reported."""
    rule = Rule(peers=(Peer(namespace_selector=sel(team="x")), Peer(pod_selector=sel(app="web"))))
    other = pod("b", "client")
    found = ids(
        namespaces=[ns("a"), ns("b", team="x")],
        pods=[WEB, other],
        policies=[policy("p", ingress=[rule])],
        rule="KF003",
    )
    assert found == []


# --- KF004 named port (S21) -------------------------------------------------------------------


def test_kf004_s21_ingress_named_port_not_declared_by_selected_pods_is_reported() -> None:
    """An ingress port name the selected pods do not declare (by name AND protocol) reports."""
    rule = Rule(ports=(tcp("https"), PolicyPort(Protocol.UDP, "http")))
    found = ids(pods=[WEB], policies=[policy("p", ingress=[rule])], rule="KF004")
    assert [f.path for f in found] == ["spec.ingress[0].ports[0]", "spec.ingress[0].ports[1]"]


def test_kf004_s21_egress_named_port_towards_ipblock_only_is_reported_without_pods() -> None:
    """An egress named port whose peers are all ipBlocks matches no external address."""
    rule = Rule(peers=(block("203.0.113.0/24"),), ports=(tcp("http"),))
    found = ids(policies=[policy("p", types=EGR, egress=[rule])], rule="KF004")
    assert len(found) == 1
    assert "external address never matches" in found[0].message


def test_kf004_s21_declared_named_ports_are_quiet() -> None:
    """Ingress and egress names that the candidate destinations declare give no finding."""
    ingress = Rule(ports=(tcp("http"),))
    egress = Rule(peers=(Peer(pod_selector=sel(app="web")),), ports=(tcp("http"),))
    pols = [policy("p", ingress=[ingress]), policy("q", types=EGR, egress=[egress, DNS_RULE])]
    assert ids(pods=[WEB, DB], policies=pols, rule="KF004") == []


# --- KF005 egress without DNS -----------------------------------------------------------------


def test_kf005_egress_isolation_without_dns_is_reported() -> None:
    """A default-deny egress policy with no DNS rule reports, with or without pods."""
    deny = policy("deny-egress", types=EGR)
    assert [f.severity for f in ids(policies=[deny], rule="KF005")] == [Severity.ERROR]
    found = ids(pods=[WEB, DB], policies=[deny], rule="KF005")
    assert len(found) == 1
    assert "2 pod(s)" in found[0].message


def test_kf005_dns_to_tcp_only_or_wrong_namespace_is_still_reported() -> None:
    """TCP 53 alone, or UDP 53 to pods of the policy's own namespace, is not a DNS allowance."""
    tcp_only = Rule(peers=DNS_RULE.peers, ports=(PolicyPort(Protocol.TCP, 53),))
    own_ns = Rule(peers=(Peer(pod_selector=sel(**{"k8s-app": "kube-dns"})),), ports=DNS_RULE.ports)
    assert len(ids(policies=[policy("p", types=EGR, egress=[tcp_only])], rule="KF005")) == 1
    assert len(ids(policies=[policy("p", types=EGR, egress=[own_ns])], rule="KF005")) == 1


def test_kf005_dns_allowed_by_another_policy_or_node_local_dns_is_quiet() -> None:
    """DNS from any selecting policy, or to NodeLocal DNS 169.254.20.10, satisfies the check."""
    deny = policy("deny-egress", types=EGR)
    dns = policy("dns", types=EGR, egress=[DNS_RULE])
    assert ids(pods=[WEB], policies=[deny, dns], rule="KF005") == []
    assert ids(policies=[deny, dns], rule="KF005") == []
    local = Rule(peers=(block("169.254.20.10/32"),), ports=(PolicyPort(Protocol.UDP, 53),))
    assert ids(policies=[policy("p", types=EGR, egress=[local])], rule="KF005") == []
    assert ids(policies=[policy("ingress-only")], rule="KF005") == []


def test_kf005_real_kube_dns_pods_with_named_port_count_as_dns() -> None:
    """When kube-dns pods are in the input, a named port they declare resolves against them."""
    coredns = pod(
        "kube-system",
        "coredns",
        ports=[ContainerPort(53, Protocol.UDP, "dns")],
        **{"k8s-app": "kube-dns"},
    )
    rule = Rule(peers=DNS_RULE.peers, ports=(PolicyPort(Protocol.UDP, "dns"),))
    pols = [policy("p", types=EGR, egress=[rule])]
    assert (
        ids(namespaces=[ns("kube-system")], pods=[WEB, coredns], policies=pols, rule="KF005") == []
    )


# --- KF006 ipBlock and Services (S22) ---------------------------------------------------------


def test_kf006_s22_ipblock_inside_service_range_or_on_cluster_ip_is_an_error() -> None:
    """A block inside the Service range, or exactly a ClusterIP, never matches: error."""
    svc = Service(
        namespace="b",
        name="api",
        selector=Labels({"app": "api"}),
        cluster_ips=(ipaddress.ip_address("198.18.250.10"),),
    )
    rules = [Rule(peers=(block("198.19.4.0/24"),)), Rule(peers=(block("198.18.250.10/32"),))]
    egress = policy("p", types=EGR, egress=rules)
    found = ids(services=[svc], policies=[egress], rule="KF006", options=SERVICES)
    assert [(f.path, f.severity) for f in found] == [
        ("spec.egress[0].to[0].ipBlock", Severity.ERROR),
        ("spec.egress[1].to[0].ipBlock", Severity.ERROR),
    ]
    assert "api" in found[1].message


def test_kf006_s22_block_overlapping_service_range_is_a_warning_unless_excepted() -> None:
    """A block wider than the Service range overlaps it (warning); excepting the range or /0 is
    quiet."""
    wide = policy("p", types=EGR, egress=[Rule(peers=(block("198.18.0.0/15"),))])
    found = ids(policies=[wide], rule="KF006", options=SERVICES)
    assert [f.severity for f in found] == [Severity.WARNING]
    excepted = Rule(peers=(block("198.18.0.0/15", "198.19.0.0/16"),))
    anywhere = Rule(peers=(block("0.0.0.0/0"),))
    quiet = policy("q", types=EGR, egress=[excepted, anywhere])
    assert ids(policies=[quiet], rule="KF006", options=SERVICES) == []


def test_kf006_custom_service_cidr_option_is_used() -> None:
    """LintOptions.service_cidrs replaces the default Service range (Kubernetes' 10.96.0.0/12,
    named here by the constant only)."""
    rule = Rule(peers=(block(str(DEFAULT_SERVICE_CIDRS[0])),))
    inventory = Inventory.of(policies=[policy("p", types=EGR, egress=[rule])])
    assert [f.rule for f in lint(inventory) if f.rule == "KF006"] == ["KF006"]
    assert [f for f in lint(inventory, options=SERVICES) if f.rule == "KF006"] == []


# --- KF007 ipBlock covering pods (S15) --------------------------------------------------------


def test_kf007_s15_ipblock_covering_pod_addresses_is_reported() -> None:
    """A block containing pod IPs lists the pods it admits regardless of labels."""
    rule = Rule(peers=(block("198.18.0.0/16"),))
    found = ids(pods=[WEB, DB], policies=[policy("p", ingress=[rule])], rule="KF007")
    assert len(found) == 1
    assert "a/db, a/web" in found[0].message


def test_kf007_s15_block_excepting_pods_or_outside_them_is_quiet() -> None:
    """A block whose except removes the pod range, or /0, does not report."""
    rules = [
        Rule(peers=(block("198.18.0.0/15", "198.18.0.0/16"),)),
        Rule(peers=(block("0.0.0.0/0"),)),
    ]
    assert ids(pods=[WEB, DB], policies=[policy("p", ingress=rules)], rule="KF007") == []


def test_kf007_s15_pod_cidr_option_reports_blocks_without_pod_addresses() -> None:
    """With --pod-cidr, a block overlapping the pod range reports even with no pods."""
    rule = Rule(peers=(block("198.18.0.0/15"),))
    excepted = Rule(peers=(block("198.18.0.0/15", "198.18.0.0/16"),))
    inventory = Inventory.of(policies=[policy("p", ingress=[rule, excepted])])
    options = LintOptions(pod_cidrs=(ipaddress.ip_network("198.18.0.0/16"),))
    found = [f for f in lint(inventory, options=options) if f.rule == "KF007"]
    assert [f.path for f in found] == ["spec.ingress[0].from[0].ipBlock"]
    assert "pod range 198.18.0.0/16" in found[0].message
    assert [f for f in lint(inventory) if f.rule == "KF007"] == []


# --- KF008 spoofable namespaceSelector {} -----------------------------------------------------


def test_kf008_s14_empty_namespace_selector_with_pod_labels_is_reported() -> None:
    """namespaceSelector {} AND podSelector {app: x} admits such pods from any tenant."""
    rule = Rule(peers=(Peer(namespace_selector=ALL, pod_selector=sel(role="monitoring")),))
    found = ids(policies=[policy("p", ingress=[rule])], rule="KF008")
    assert [f.path for f in found] == ["spec.ingress[0].from[0]"]


def test_kf008_s14_named_namespace_with_pod_labels_is_quiet() -> None:
    """A namespaceSelector naming the namespace by metadata.name is not spoofable."""
    named = sel(**{"kubernetes.io/metadata.name": "monitoring"})
    rule = Rule(peers=(Peer(namespace_selector=named, pod_selector=sel(role="monitoring")),))
    assert ids(policies=[policy("p", ingress=[rule])], rule="KF008") == []


# --- KF009 / KF010 default deny ---------------------------------------------------------------


def test_kf009_kf010_namespace_without_default_deny_is_reported_with_coverage() -> None:
    """A namespace with only a narrow ingress policy reports both directions, with coverage."""
    narrow = policy("web-only", selector=sel(app="web"), ingress=[Rule()])
    inventory = Inventory.of(namespaces=[ns("a")], pods=[WEB, DB], policies=[narrow])
    found = {f.rule: f for f in lint(inventory) if f.rule in ("KF009", "KF010")}
    assert set(found) == {"KF009", "KF010"}
    assert "1 of 2 pod(s)" in found["KF009"].message
    assert found["KF009"].file == "ns.yaml"
    assert found["KF010"].severity is Severity.INFO


def test_kf009_kf010_default_deny_both_directions_is_quiet() -> None:
    """An empty-selector policy isolating both directions silences both findings."""
    deny = policy("deny", types=BOTH, egress=[DNS_RULE])
    inventory = Inventory.of(namespaces=[ns("a")], pods=[WEB], policies=[deny])
    assert [f for f in lint(inventory) if f.rule in ("KF009", "KF010")] == []


# --- KF011 allow-all rule (S09) ---------------------------------------------------------------


def test_kf011_s09_rule_without_peers_and_ports_is_reported() -> None:
    """``ingress: [{}]`` allows everything and is reported at the rule."""
    found = ids(policies=[policy("p", ingress=[Rule()])], rule="KF011")
    assert [f.path for f in found] == ["spec.ingress[0]"]


def test_kf011_s09_rule_with_ports_or_peers_is_quiet() -> None:
    """A rule open to all peers on one port, or to some peers on all ports, is not allow-all."""
    rules = [Rule(ports=(tcp(443),)), Rule(peers=(Peer(pod_selector=ALL),))]
    assert ids(policies=[policy("p", ingress=rules)], rule="KF011") == []


# --- KF012 redundant rules --------------------------------------------------------------------


def test_kf012_rule_covered_in_same_policy_is_reported() -> None:
    """A rule on TCP 8080 from app=web is covered by a rule on 8000-9000 from all pods."""
    narrow = Rule(peers=(Peer(pod_selector=sel(app="web", tier="x")),), ports=(tcp(8080),))
    wide = Rule(
        peers=(Peer(pod_selector=sel(app="web")),),
        ports=(PolicyPort(Protocol.TCP, 8000, 9000),),
    )
    found = ids(policies=[policy("p", ingress=[narrow, wide])], rule="KF012")
    assert [f.path for f in found] == ["spec.ingress[0]"]
    assert "spec.ingress[1] of the same policy" in found[0].message


def test_kf012_rule_covered_across_policies_and_duplicates_reported_once() -> None:
    """A rule repeated in a policy with an empty podSelector is redundant; twins report once."""
    rule = Rule(peers=(Peer(pod_selector=sel(app="web")),), ports=(tcp(80),))
    narrow = policy("narrow", selector=sel(app="db"), ingress=[rule])
    everything = policy("all", ingress=[rule])
    found = ids(policies=[narrow, everything], rule="KF012")
    assert [(f.object, f.path) for f in found] == [("NetworkPolicy a/narrow", "spec.ingress[0]")]
    twins = ids(policies=[policy("p", ingress=[rule, rule])], rule="KF012")
    assert [f.path for f in twins] == ["spec.ingress[1]"]


def test_kf012_partially_overlapping_rules_are_quiet() -> None:
    """Rules that only overlap (other port, other peers, narrower target) are not redundant."""
    a = Rule(peers=(Peer(pod_selector=sel(app="web")),), ports=(tcp(80),))
    b = Rule(peers=(Peer(pod_selector=sel(app="web")),), ports=(tcp(81),))
    c = Rule(peers=(block("198.18.0.0/15", "198.19.0.0/16"),))
    d = Rule(peers=(block("198.19.0.0/24"),))
    narrow_target = policy("q", selector=sel(app="db"), ingress=[a])
    pols = [
        policy("p", ingress=[b, c, d]),
        narrow_target,
        policy("r", selector=sel(app="x"), ingress=[a]),
    ]
    assert ids(policies=pols, rule="KF012") == []


# --- KF013 duplicate names --------------------------------------------------------------------


def test_kf013_duplicate_policy_names_across_files_are_reported() -> None:
    """The second definition of a namespace/name is reported, pointing at the first."""
    first = policy("p", file="one.yaml", line=3)
    second = policy("p", file="two.yaml", line=7)
    found = ids(policies=[first, second], rule="KF013")
    assert [(f.file, f.line, f.path) for f in found] == [("two.yaml", 7, "metadata.name")]
    assert found[0].message == (
        "NetworkPolicy a/p is also defined at one.yaml:3; applying both keeps only the last one"
    )
    (swapped,) = ids(policies=[second, first], rule="KF013")
    assert (swapped.file, swapped.line) == ("one.yaml", 3)
    assert "also defined at two.yaml:7" in swapped.message


def test_kf013_same_name_in_different_namespaces_is_quiet() -> None:
    """Names are per namespace: a/p and b/p are different policies."""
    assert ids(policies=[policy("p"), policy("p", namespace="b")], rule="KF013") == []


def test_findings_are_sorted_and_deterministic() -> None:
    """Findings come sorted by file and line, identical across runs and input orders."""
    pols = [policy("z", ingress=[Rule()], file="b.yaml"), policy("y", types=EGR, file="a.yaml")]
    first = lint(Inventory.of(policies=pols))
    assert [(f.file, f.line, f.rule, f.object) for f in first] == [
        ("a.yaml", 1, "KF005", "NetworkPolicy a/y"),
        ("b.yaml", 6, "KF011", "NetworkPolicy a/z"),
    ]
    assert lint(Inventory.of(policies=pols)) == first
    assert lint(Inventory.of(policies=pols[::-1])) == first


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_every_rule_has_a_positive_test_in_this_module(rule: str) -> None:
    """Each catalog id is exercised by a test named after it (keeps the catalog honest); the
    tier findings (KF014-KF018) are tested in test_audit_tiers."""
    from tests.unit.audit import test_audit_tiers

    names = [*globals(), *vars(test_audit_tiers)]
    assert any(name.startswith("test_") and f"{rule.lower()}_" in name for name in names)


def test_kf005_each_blind_pod_is_reported_once_at_the_broadest_policy() -> None:
    """Two egress policies over the same DNS-less pod give one finding, at the default deny."""
    narrow = policy("web-egress", selector=sel(app="web"), types=EGR)
    deny = policy("zz-default-deny", types=EGR)
    found = ids(pods=[WEB], policies=[narrow, deny], rule="KF005")
    assert [f.object for f in found] == ["NetworkPolicy a/zz-default-deny"]


def test_kf009_undeclared_namespace_points_at_one_of_its_policies() -> None:
    """A namespace only known from pods and a policy is located at that policy's file."""
    narrow = policy("web-only", selector=sel(app="web"), file="web.yaml", line=4)
    found = ids(pods=[WEB, DB], policies=[narrow], rule="KF009")
    assert [(f.object, f.file, f.line) for f in found] == [("Namespace a", "web.yaml", 4)]


# --- ipBlocks compared exactly, as address intervals (S15) ------------------------------------


def test_kf006_s15_block_whose_excepts_remove_the_whole_service_range_is_quiet() -> None:
    """198.18.0.0/15 except the two halves of the Service range 198.19.0.0/16 holds no Service
    address: no finding (the CIDR-only comparison used to warn: neither except alone contains
    the range)."""
    rule = Rule(peers=(block("198.18.0.0/15", "198.19.0.0/17", "198.19.128.0/17"),))
    egress = policy("p", types=EGR, egress=[rule])
    assert ids(policies=[egress], rule="KF006", options=SERVICES) == []


def test_kf006_s15_block_trimmed_to_the_service_range_by_its_except_is_an_error() -> None:
    """198.18.0.0/15 except 198.18.0.0/16 is exactly the Service range 198.19.0.0/16: it never
    matches (error; the CIDR-only comparison called it a partial overlap)."""
    rule = Rule(peers=(block("198.18.0.0/15", "198.18.0.0/16"),))
    egress = policy("p", types=EGR, egress=[rule])
    found = ids(policies=[egress], rule="KF006", options=SERVICES)
    assert [f.severity for f in found] == [Severity.ERROR]
    assert "lies inside the Service range 198.19.0.0/16" in found[0].message


def test_kf007_s15_pod_cidr_excepted_in_two_halves_is_quiet() -> None:
    """With --pod-cidr 198.18.0.0/16, a block excepting both /17 halves covers no pod address."""
    rule = Rule(peers=(block("198.18.0.0/15", "198.18.0.0/17", "198.18.128.0/17"),))
    inventory = Inventory.of(policies=[policy("p", ingress=[rule])])
    options = LintOptions(pod_cidrs=(ipaddress.ip_network("198.18.0.0/16"),))
    assert [f for f in lint(inventory, options=options) if f.rule == "KF007"] == []


def test_kf012_s15_block_covered_once_its_excepts_are_counted_is_redundant() -> None:
    """198.18.0.0/15 except 198.19.0.0/16 holds the same addresses as 198.18.0.0/16: a rule with
    it is covered by a rule with 198.18.0.0/16 (the CIDR-only comparison missed it)."""
    wide = Rule(peers=(block("198.18.0.0/16"),))
    narrow = Rule(peers=(block("198.18.0.0/15", "198.19.0.0/16"),))
    found = ids(policies=[policy("p", ingress=[wide, narrow])], rule="KF012")
    assert [f.path for f in found] == ["spec.ingress[1]"]
    assert "covered by spec.ingress[0] of the same policy" in found[0].message
