"""Scale: 1,000 policies over 2,000 pods render, and per-packet work does not grow with policies.

Not timed (benchmarks/ measures speed); this pins the structure that makes per-packet cost
independent of the number of policies: the forward chain is the same handful of rules, and each
class chain is one set lookup (over peer atoms, both IP families at once) plus ``drop``.
"""

from __future__ import annotations

import ipaddress
import re

from kubefence.api import (
    METADATA_NAME_LABEL,
    ContainerPort,
    Inventory,
    IPAddress,
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
from kubefence.dataplane.nft import render_ruleset

NAMESPACES = 20
PODS = 2000


def _selector(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=Labels(labels))


def _cluster(policies: int) -> tuple[Inventory, dict[str, tuple[IPAddress, ...]]]:
    namespaces = [
        Namespace(f"ns{i}", Labels({METADATA_NAME_LABEL: f"ns{i}", "team": f"t{i % 4}"}))
        for i in range(NAMESPACES)
    ]
    pods = [
        Pod(
            namespace=f"ns{i % NAMESPACES}",
            name=f"pod{i}",
            labels=Labels({"app": f"a{i % 50}", "tier": f"t{i % 3}"}),
            ports=(ContainerPort(8080, name="http"),),
        )
        for i in range(PODS)
    ]
    base4, base6 = ipaddress.IPv4Address("198.18.0.0"), ipaddress.IPv6Address("fd00::")
    addresses: dict[str, tuple[IPAddress, ...]] = {
        pod.key: (base4 + n + 1, base6 + n + 1) for n, pod in enumerate(pods)
    }
    rules = []
    for j in range(policies):
        k = (j // NAMESPACES) % 50
        rules.append(
            NetworkPolicy(
                namespace=f"ns{j % NAMESPACES}",
                name=f"np{j}",
                pod_selector=_selector(app=f"a{k}"),
                policy_types=(PolicyType.INGRESS, PolicyType.EGRESS),
                ingress=(
                    Rule(
                        peers=(
                            Peer(pod_selector=_selector(app=f"a{(k + 1) % 50}")),
                            Peer(
                                namespace_selector=_selector(team=f"t{j % 4}"),
                                pod_selector=_selector(tier="t1"),
                            ),
                        ),
                        ports=(PolicyPort(port=8000 + j % 100), PolicyPort(port="http")),
                    ),
                ),
                egress=(
                    Rule(
                        peers=(
                            Peer(
                                ip_block=IPBlock(
                                    ipaddress.ip_network("10.0.0.0/8"),
                                    (ipaddress.ip_network(f"10.{j % 256}.0.0/16"),),
                                )
                            ),
                            Peer(namespace_selector=_selector(team=f"t{(j + 1) % 4}")),
                        ),
                        ports=(PolicyPort(Protocol.UDP, 53), PolicyPort(port="http")),
                    ),
                ),
            )
        )
    return Inventory.of(namespaces=namespaces, pods=pods, policies=rules), addresses


def _chains(text: str) -> dict[str, list[str]]:
    """Chain name -> its rule lines (declarations and comments left out)."""
    chains: dict[str, list[str]] = {}
    for match in re.finditer(r"\n\tchain (\S+) \{\n(.*?)\n\t\}", text, re.S):
        lines = [line.strip() for line in match.group(2).splitlines()]
        chains[match.group(1)] = [
            line for line in lines if line and not line.startswith(("type ", "comment ", "#"))
        ]
    return chains


def test_1000_policies_2000_pods_render_with_policy_independent_rule_counts() -> None:
    """The forward chain's rules are identical with 10 and 1,000 policies, and no class chain
    holds more than one set lookup (over peer atoms, both IP families at once) plus drop."""
    few, few_addresses = _cluster(10)
    small_text = render_ruleset(few, addresses=few_addresses)
    inventory, addresses = _cluster(1000)
    text = render_ruleset(inventory, addresses=addresses)
    small, big = _chains(small_text), _chains(text)
    assert big["forward"] == small["forward"]
    assert len(big["forward"]) == 12  # ct state, 2 x (atom look-ups, dispatches), mark reset
    class_chains = [name for name in big if name not in ("forward", "input")]
    assert len(class_chains) > 50
    for name in class_chains:
        rules = big[name]
        assert rules[-1] == "drop"
        assert len(rules) <= 2, name
        assert all("@" in rule and rule.endswith(" return") for rule in rules[:-1])
    dispatched = text.count(" : jump ")
    assert dispatched == 2 * 2 * sum(1 for p in inventory.pods if _selected(inventory, p))


def _selected(inventory: Inventory, pod: Pod) -> bool:
    """Is the pod selected by a policy of the cluster (each is selected in both directions)."""
    return any(
        p.namespace == pod.namespace and p.pod_selector.match_labels["app"] == pod.labels["app"]
        for p in inventory.policies_by_namespace.get(pod.namespace, ())
    )
