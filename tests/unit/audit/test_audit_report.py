"""The namespace report: coverage, reachability on any port (S05, S07), ranges, tenant paths."""

from __future__ import annotations

import ipaddress

from kubefence.api import (
    ContainerPort,
    Inventory,
    IPBlock,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    PolicyType,
    Protocol,
    Rule,
)
from kubefence.audit import build_report

ALL = LabelSelector()


def ns(name: str, tenant: str | None = None) -> Namespace:
    labels = {"kubernetes.io/metadata.name": name}
    if tenant:
        labels["tenant"] = tenant
    return Namespace(name=name, labels=Labels(labels))


def pod(namespace: str, name: str, *ports: ContainerPort) -> Pod:
    return Pod(namespace=namespace, name=name, labels=Labels({"app": name}), ports=ports)


def deny(namespace: str, *types: PolicyType, ingress: tuple[Rule, ...] = ()) -> NetworkPolicy:
    return NetworkPolicy(
        namespace=namespace,
        name="deny",
        pod_selector=ALL,
        policy_types=types or (PolicyType.INGRESS,),
        ingress=ingress,
    )


def from_namespace(name: str) -> Peer:
    return Peer(namespace_selector=LabelSelector(Labels({"kubernetes.io/metadata.name": name})))


def test_s05_default_deny_ingress_blocks_other_namespaces_but_not_their_egress() -> None:
    """b denies ingress: a cannot reach b, b still reaches a; coverage counts isolated pods."""
    inventory = Inventory.of(
        namespaces=[ns("a", "t1"), ns("b", "t2")],
        pods=[pod("a", "x"), pod("b", "y"), pod("b", "z")],
        policies=[deny("b")],
    )
    report = build_report(inventory, tenant_label="tenant")
    assert report.names == ("a", "b")
    assert report.matrix == ((True, False), (True, True))
    b = report.namespaces[1]
    assert (b.pods, b.ingress_isolated, b.egress_isolated) == (2, 2, 0)
    assert b.reachable_from == ("b",)
    assert [p.source for p in report.cross_tenant] == ["b/y", "b/z"]


def test_s07_single_pod_namespace_reaches_itself_even_under_default_deny() -> None:
    """A pod may always talk to itself, so the diagonal is set for a non-empty namespace."""
    inventory = Inventory.of(namespaces=[ns("a")], pods=[pod("a", "x")], policies=[deny("a")])
    assert build_report(inventory).matrix == ((True,),)


def test_s20_any_port_reachability_finds_a_narrow_port_range_and_names_the_rule() -> None:
    """Only TCP 8000-9000 from a is open at b: the path lists that range and the admitting rule
    (before port classes it listed only the range's low end)."""
    rule = Rule(peers=(from_namespace("a"),), ports=(PolicyPort(Protocol.TCP, 8000, 9000),))
    inventory = Inventory.of(
        namespaces=[ns("a", "t1"), ns("b", "t2")],
        pods=[pod("a", "x"), pod("b", "y")],
        policies=[deny("b", ingress=(rule,))],
    )
    report = build_report(inventory, tenant_label="tenant")
    (path,) = [p for p in report.cross_tenant if p.source == "a/x"]
    assert path.ports == ("8000-9000/TCP",)
    assert [str(o) for o in path.opened_by] == [
        "egress: not isolated",
        "ingress: b/deny spec.ingress[0]",
    ]


def test_s21_named_port_reachability_uses_the_destination_declared_port() -> None:
    """A named port resolves at the destination: the path shows the declared number."""
    rule = Rule(peers=(from_namespace("a"),), ports=(PolicyPort(Protocol.UDP, "stats"),))
    inventory = Inventory.of(
        namespaces=[ns("a", "t1"), ns("b", "t2")],
        pods=[pod("a", "x"), pod("b", "y", ContainerPort(8125, Protocol.UDP, "stats"))],
        policies=[deny("b", ingress=(rule,))],
    )
    report = build_report(inventory, tenant_label="tenant")
    (path,) = [p for p in report.cross_tenant if p.source == "a/x"]
    assert path.ports == ("8125/UDP",)


def test_unisolated_pair_is_open_on_all_ports_and_reported_compactly() -> None:
    """Without policies every protocol is open on every port: reported as 'all ports'."""
    inventory = Inventory.of(
        namespaces=[ns("a", "t1"), ns("b", "t2")], pods=[pod("a", "x"), pod("b", "y")]
    )
    paths = build_report(inventory, tenant_label="tenant").cross_tenant
    assert [p.ports for p in paths] == [("all ports",), ("all ports",)]


def test_cross_tenant_paths_need_two_different_labelled_tenants() -> None:
    """Paths between tenants are listed; paths to unlabelled or same-tenant namespaces are not."""
    inventory = Inventory.of(
        namespaces=[ns("a1", "acme"), ns("a2", "acme"), ns("g", "globex"), ns("sys")],
        pods=[pod("a1", "p"), pod("a2", "q"), pod("g", "r"), pod("sys", "s")],
        policies=[deny("a2"), deny("g", ingress=(Rule(peers=(from_namespace("a1"),)),))],
    )
    report = build_report(inventory, tenant_label="tenant")
    assert [n.tenant for n in report.namespaces] == ["acme", "acme", "globex", None]
    pairs = [(p.source, p.destination) for p in report.cross_tenant]
    assert pairs == [("a1/p", "g/r"), ("g/r", "a1/p")]


def test_s15_external_ranges_come_from_ipblocks_and_unisolated_pods() -> None:
    """Ingress ranges list ipBlock peers with ports and rule; unisolated pods mean anywhere."""
    block = Peer(ip_block=IPBlock(ipaddress.ip_network("203.0.113.0/24")))
    rule = Rule(peers=(block,), ports=(PolicyPort(Protocol.TCP, 443),))
    inventory = Inventory.of(
        namespaces=[ns("a"), ns("b")],
        pods=[pod("a", "x"), pod("b", "y")],
        policies=[deny("b", ingress=(rule,))],
    )
    report = build_report(inventory, reachability=False)
    a, b = report.namespaces
    assert [(e.range, e.ports, e.via) for e in b.external_ingress] == [
        ("203.0.113.0/24", "443/TCP", "b/deny spec.ingress[0]")
    ]
    assert [e.via for e in a.external_ingress] == ["1 pod(s) not isolated"]
    assert report.matrix == ()
    assert report.cross_tenant == ()


def ranges(*spans: tuple[int, int]) -> Rule:
    """Ingress from namespace a on TCP ``low``-``high`` for each span."""
    ports = tuple(PolicyPort(Protocol.TCP, low, high) for low, high in spans)
    return Rule(peers=(from_namespace("a"),), ports=ports)


def paths_to_b(*rules: Rule) -> dict[tuple[str, str], tuple[str, ...]]:
    inventory = Inventory.of(
        namespaces=[ns("a", "t1"), ns("b", "t2")],
        pods=[pod("a", "x"), pod("b", "y")],
        policies=[deny("b", ingress=rules)],
    )
    report = build_report(inventory, tenant_label="tenant")
    return {(p.source, p.destination): p.ports for p in report.cross_tenant}


def test_s20_the_port_nothing_names_is_not_taken_from_inside_a_named_range() -> None:
    """Open on 1-79 and 81-90 only: 80 (nothing names it) is closed, so no 'other' label."""
    assert paths_to_b(ranges((1, 79), (81, 90)))[("a/x", "b/y")] == ("1-79/TCP", "81-90/TCP")


def test_s20_adjacent_open_port_classes_are_merged_into_one_range() -> None:
    """1-79 and 80-90 in two rules: the classes touch, so the path shows 1-90/TCP."""
    assert paths_to_b(ranges((1, 79)), ranges((80, 90)))[("a/x", "b/y")] == ("1-90/TCP",)


def test_s20_a_protocol_open_on_every_port_class_is_all() -> None:
    """1-65535 on TCP from a: every TCP class is open (all/TCP); UDP and SCTP stay closed."""
    assert paths_to_b(ranges((1, 65535)))[("a/x", "b/y")] == ("all/TCP",)


def test_s20_each_protocol_is_labelled_on_its_own() -> None:
    """TCP 80-65535 leaves TCP 1-79 closed, so TCP shows the range; a UDP entry without a port
    opens every UDP port (all/UDP); SCTP stays closed and is not listed."""
    udp = Rule(peers=(from_namespace("a"),), ports=(PolicyPort(Protocol.UDP, None),))
    ports = paths_to_b(ranges((80, 65535)), udp)[("a/x", "b/y")]
    assert ports == ("80-65535/TCP", "all/UDP")


def replica(namespace: str, name: str, owner: str) -> Pod:
    app = owner.split("/", 1)[1]
    return Pod(namespace=namespace, name=name, labels=Labels({"app": app}), owner=owner)


def test_paths_are_counted_per_namespace_pair_and_workload_pair_with_examples() -> None:
    """3 web replicas and 2 api replicas in a, one bare pod in b, no policies: a -> b has 5
    pod pairs in 2 workload pairs (one example each); b -> a has 5 pod pairs too."""
    inventory = Inventory.of(
        namespaces=[ns("a", "t1"), ns("b", "t2")],
        pods=[
            *(replica("a", f"web-{i}", "Deployment/web") for i in range(3)),
            *(replica("a", f"api-{i}", "Deployment/api") for i in range(2)),
            pod("b", "y"),
        ],
    )
    report = build_report(inventory, tenant_label="tenant")
    ab, ba = report.tenant_paths
    assert (ab.source, ab.destination, ab.source_tenant, ab.destination_tenant) == (
        "a",
        "b",
        "t1",
        "t2",
    )
    assert (ab.pod_pairs, ab.workload_pairs, ab.ports) == (5, 2, ("all ports",))
    assert [(w.source, w.destination, w.pod_pairs) for w in ab.workloads] == [
        ("a/Deployment/api", "b/y", 2),
        ("a/Deployment/web", "b/y", 3),
    ]
    assert [(w.example.source, w.example.destination) for w in ab.workloads] == [
        ("a/api-0", "b/y"),
        ("a/web-0", "b/y"),
    ]
    assert (ba.pod_pairs, ba.workload_pairs) == (5, 2)
    assert len(report.cross_tenant) == 4  # the examples, not every pod pair


def test_examples_and_explanations_are_bounded() -> None:
    """examples=1 lists one workload pair per namespace pair; explain=1 explains one example,
    that of the namespace pair with the most pod pairs; explain=0 none."""
    inventory = Inventory.of(
        namespaces=[ns("a", "t1"), ns("b", "t2"), ns("c", "t3")],
        pods=[
            *(replica("a", f"web-{i}", "Deployment/web") for i in range(3)),
            pod("a", "x"),
            pod("b", "y"),
            pod("c", "z"),
        ],
        policies=[deny("c")],
    )
    report = build_report(inventory, tenant_label="tenant", examples=1, explain=1)
    assert all(len(p.workloads) == 1 for p in report.tenant_paths)
    explained = [
        (p.source, p.destination) for p in report.tenant_paths if p.workloads[0].example.explained
    ]
    assert explained == [("a", "b")]  # 4 pod pairs; b -> a also has 4, but a sorts first
    none = build_report(inventory, tenant_label="tenant", explain=0)
    assert not any(p.explained for p in none.cross_tenant)
    assert [p.pod_pairs for p in none.tenant_paths] == [p.pod_pairs for p in report.tenant_paths]
    capped = build_report(inventory, tenant_label="tenant", examples=1, example_limit=2)
    assert [(p.source, p.destination, len(p.workloads)) for p in capped.tenant_paths] == [
        ("a", "b", 1),
        ("b", "a", 1),
        ("c", "a", 0),  # as large as the first two, but sorts after them
        ("c", "b", 0),
    ]
    assert [p.pod_pairs for p in capped.tenant_paths] == [4, 4, 4, 1]
