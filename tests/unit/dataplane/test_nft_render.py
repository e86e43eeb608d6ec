"""The rendered text: replacement idiom, internal references, comment limits, determinism.

Checked without ``nft`` (tests/netns/test_nft_syntax.py runs the real one on the golden files):
every chain, set and map the text refers to is declared, comments stay under nft's 128-byte
limit, and the output depends only on the inventory and the addresses.
"""

from __future__ import annotations

import ipaddress
import re

from hypothesis import given
from hypothesis import strategies as st

from kubefence.api import (
    METADATA_NAME_LABEL,
    ContainerPort,
    Inventory,
    IPAddress,
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
from kubefence.dataplane.nft import TABLE, render_ruleset

_APPS = ["web", "db", "cache"]


@st.composite
def _clusters(draw: st.DrawFn) -> tuple[Inventory, dict[str, tuple[IPAddress, ...]]]:
    namespaces = [
        Namespace(name, Labels({METADATA_NAME_LABEL: name, "team": name[-1]}))
        for name in ("ns-a", "ns-b")
    ]
    pods = []
    for i in range(draw(st.integers(0, 6))):
        pods.append(
            Pod(
                namespace=draw(st.sampled_from(["ns-a", "ns-b"])),
                name=f"pod{i}",
                labels=Labels({"app": draw(st.sampled_from(_APPS))}),
                ports=(ContainerPort(8080, name="http"),) if draw(st.booleans()) else (),
            )
        )
    selectors = st.sampled_from(
        [LabelSelector(), *(LabelSelector(Labels({"app": a})) for a in _APPS)]
    )
    peers = st.one_of(
        st.builds(Peer, pod_selector=selectors),
        st.builds(Peer, namespace_selector=selectors),
    )
    ports = st.sampled_from(
        [PolicyPort(Protocol.TCP, 80), PolicyPort(port="http"), PolicyPort(Protocol.SCTP)]
    )
    rules = st.builds(
        Rule,
        peers=st.lists(peers, max_size=2).map(tuple),
        ports=st.lists(ports, max_size=2).map(tuple),
    )
    policies = [
        NetworkPolicy(
            namespace=draw(st.sampled_from(["ns-a", "ns-b"])),
            name=f"np{i}",
            pod_selector=draw(selectors),
            policy_types=draw(
                st.sampled_from([(PolicyType.INGRESS,), (PolicyType.EGRESS,), tuple(PolicyType)])
            ),
            ingress=tuple(draw(st.lists(rules, max_size=2))),
            egress=tuple(draw(st.lists(rules, max_size=2))),
        )
        for i in range(draw(st.integers(0, 4)))
    ]
    inventory = Inventory.of(namespaces=namespaces, pods=pods, policies=policies)
    addresses: dict[str, tuple[IPAddress, ...]] = {
        pod.key: (
            ipaddress.IPv4Address("198.18.0.0") + n + 1,
            ipaddress.IPv6Address("fd00::") + n + 1,
        )
        for n, pod in enumerate(inventory.pods)
    }
    return inventory, addresses


@given(_clusters())
def test_every_reference_in_the_text_is_declared(
    cluster: tuple[Inventory, dict[str, tuple[IPAddress, ...]]],
) -> None:
    """Every ``jump``, ``@set`` and ``@map`` names a chain, set or map the table declares, each
    declared once, and the file opens with the atomic replacement idiom."""
    inventory, addresses = cluster
    text = render_ruleset(inventory, addresses=addresses)
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert code[:3] == [f"table {TABLE} {{}}", f"delete table {TABLE}", f"table {TABLE} {{"]
    chains = re.findall(r"^\tchain (\S+) \{", text, re.M)
    sets = re.findall(r"^\t(?:set|map) (\S+) \{", text, re.M)
    assert len(chains) == len(set(chains))
    assert len(sets) == len(set(sets))
    assert set(re.findall(r"jump (\w+)", text)) <= set(chains)
    assert set(re.findall(r"@(\w+)", text)) <= set(sets)


def test_comments_stay_under_the_nft_limit() -> None:
    """Element and chain comments of the longest legal names are shortened to at most 128
    bytes, and quotes or backslashes never reach the text."""
    namespace = "n" * 63
    name = "p" * 253
    inventory = Inventory.of(
        namespaces=[Namespace(namespace, Labels({METADATA_NAME_LABEL: namespace}))],
        pods=[Pod(namespace=namespace, name=name)],
        policies=[
            NetworkPolicy(
                namespace=namespace,
                name="d" * 253,
                pod_selector=LabelSelector(),
                policy_types=(PolicyType.INGRESS,),
            )
        ],
    )
    text = render_ruleset(
        inventory, addresses={f"{namespace}/{name}": (ipaddress.IPv4Address("198.18.0.1"),)}
    )
    comments = re.findall(r'comment "([^"]*)"', text)
    assert len(comments) >= 2  # the dispatch element and the class chain
    assert all(len(c.encode()) <= 128 and "\\" not in c for c in comments)
    assert any(c.endswith("...") for c in comments)


def test_same_inputs_render_the_same_text() -> None:
    """Rendering twice, or with the address mapping built in another order, gives equal text."""
    namespaces = [Namespace("a", Labels({METADATA_NAME_LABEL: "a"}))]
    pods = [Pod(namespace="a", name=f"p{i}", labels=Labels({"app": str(i % 2)})) for i in range(6)]
    policy = NetworkPolicy(
        namespace="a",
        name="np",
        pod_selector=LabelSelector(Labels({"app": "0"})),
        policy_types=(PolicyType.INGRESS,),
        ingress=(Rule(peers=(Peer(pod_selector=LabelSelector(Labels({"app": "1"}))),)),),
    )
    inventory = Inventory.of(namespaces=namespaces, pods=pods, policies=[policy])
    forward = {p.key: (ipaddress.IPv4Address("198.18.0.0") + i + 1,) for i, p in enumerate(pods)}
    backward = dict(reversed(list(forward.items())))
    first = render_ruleset(inventory, addresses=forward)
    assert first == render_ruleset(inventory, addresses=backward)
    assert first == render_ruleset(inventory, addresses=forward)


@given(_clusters())
def test_s06_established_and_related_pass_before_any_policy(
    cluster: tuple[Inventory, dict[str, tuple[IPAddress, ...]]],
) -> None:
    """S06: in every hook chain the first rule accepts established and related packets, so
    replies of an allowed connection never meet a policy check."""
    inventory, addresses = cluster
    text = render_ruleset(inventory, addresses=addresses)
    hooks = re.findall(r"\tchain \w+ \{\n\t\ttype filter hook \w+[^\n]*\n\t\t([^\n]*)", text)
    assert len(hooks) == 2  # forward and input (output only with allow_from_node off)
    assert all(rule == "ct state established,related accept" for rule in hooks)
