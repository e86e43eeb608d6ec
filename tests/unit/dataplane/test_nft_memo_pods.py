"""The planner's memo follows pod-side changes incrementally, and equals a fresh plan.

Why this module exists: an agent re-plans after every pod event, and ``Context.updated``
re-tests only the changed pods against the cached peers. These tests hold the memoised text
to a fresh render after random sequences of small pod-side changes (labels, ports, addresses,
pods added and removed, two pods given one address, namespaces relabelled, a policy dropped),
with and without a local dispatch limit, and check that a label change re-matches O(peers),
not O(pods x peers).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.dataplane.test_nft_plan import (
    _CONTAINER_PORTS,
    _LABELS,
    INGRESS,
    _clusters,
    addresses_of,
    namespace,
    pod,
    policy,
    sel,
)

import kubefence.dataplane.nft._peers as peers_module
from kubefence.api import Inventory, Peer, Pod, Rule
from kubefence.dataplane.nft import MemoisedRenderer, render_ruleset
from kubefence.errors import DataplaneError
from kubefence.semantics import DEFAULT_SETTINGS, Settings

_SETTINGS = st.sampled_from(
    [DEFAULT_SETTINGS, Settings(ipblock_matches_pods=False), Settings(host_network_selectable=True)]
)
_STEP = st.tuples(
    st.sampled_from(
        ["relabel", "ports", "readdress", "steal", "remove", "add", "namespace", "policy"]
    ),
    st.integers(0, 20),
    _LABELS,
    _CONTAINER_PORTS,
    st.sampled_from(["red", "blue", "green"]),
)
Step = tuple[str, int, dict[str, str], list[object], str]


def _rebuilt(old: Pod, **changes: object) -> Pod:
    spec: dict[str, object] = {
        "labels": dict(old.labels),
        "ports": list(old.ports),
        "host_network": old.host_network,
    }
    ips = changes.pop("ips", [str(ip) for ip in old.ips])
    spec.update(changes)
    return pod(old.key, *ips, **spec)  # type: ignore[arg-type]


def _changed(inventory: Inventory, step: Step, serial: int) -> Inventory:
    what, index, labels, ports, team = step
    pods = list(inventory.pods)
    namespaces = list(inventory.namespaces)
    policies = list(inventory.policies)
    target = pods[index % len(pods)] if pods else None
    if what == "add" or target is None:
        pods.append(pod(f"a/n{serial}", f"198.18.2.{serial + 1}", labels=labels, ports=ports))
    elif what == "relabel":
        pods[index % len(pods)] = _rebuilt(target, labels=labels)
    elif what == "ports":
        pods[index % len(pods)] = _rebuilt(target, ports=ports)
    elif what == "readdress" and not target.host_network:
        pods[index % len(pods)] = _rebuilt(target, ips=[f"198.18.3.{serial + 1}"])
    elif what == "steal" and not target.host_network:  # another pod's addresses: refused
        other = pods[(index + 1) % len(pods)]
        pods[index % len(pods)] = _rebuilt(target, ips=[str(ip) for ip in other.ips])
    elif what == "remove":
        del pods[index % len(pods)]
    elif what == "namespace":
        name = namespaces[index % len(namespaces)].name
        namespaces[index % len(namespaces)] = namespace(name, team=team)
    elif what == "policy" and policies:
        del policies[index % len(policies)]
    return Inventory.of(namespaces=namespaces, pods=pods, policies=policies)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=80, deadline=None)
@given(_clusters(), st.lists(_STEP, min_size=1, max_size=6), _SETTINGS, st.booleans())
def test_s01_s21_memo_after_pod_side_changes_equals_fresh(
    first: Inventory, steps: Sequence[Step], settings_: Settings, only_a: bool
) -> None:
    """After every small pod-side change the memoised text is the fresh text (also when only
    namespace a's pods are dispatched, as an agent limits the dispatch to its node)."""
    renderer = MemoisedRenderer()
    inventory = first
    for serial, step in enumerate((None, *steps)):
        if step is not None:
            inventory = _changed(inventory, step, serial)
        local = {p.key for p in inventory.pods if p.namespace == "a"} if only_a else None
        addresses = addresses_of(inventory)
        try:
            fresh = render_ruleset(inventory, addresses=addresses, settings=settings_, local=local)
        except DataplaneError as exc:
            with pytest.raises(DataplaneError, match=re.escape(str(exc))):
                renderer(inventory, addresses=addresses, settings=settings_, local=local)
            continue
        memoised = renderer(inventory, addresses=addresses, settings=settings_, local=local)
        assert memoised == fresh, f"after {step}"


def _wide(pods: int, policies: int) -> Inventory:
    return Inventory.of(
        namespaces=[namespace("a", team="red"), namespace("b", team="blue")],
        pods=[
            pod(
                f"{'ab'[i % 2]}/p{i}",
                f"198.18.{i // 250}.{i % 250 + 1}",
                labels={"app": f"a{i % 9}"},
            )
            for i in range(pods)
        ],
        policies=[
            policy(
                f"a/np{i}",
                sel(app=f"a{i % 9}"),
                INGRESS,
                ingress=[Rule(peers=(Peer(pod_selector=sel(app=f"a{(i + 1) % 9}")),))],
            )
            for i in range(policies)
        ],
    )


def test_label_change_rematches_changed_pod_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """One pod relabelled: each cached peer is tested against that pod (before and after),
    never against the other pods, and the plan is the fresh one."""
    first = _wide(600, 40)
    renderer = MemoisedRenderer()
    renderer(first, addresses=addresses_of(first))
    calls = 0
    real = peers_module.peer_matches_pod

    def counting(*args: object, **kwargs: object) -> bool:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(peers_module, "peer_matches_pod", counting)
    pods = list(first.pods)
    index = next(i for i, p in enumerate(pods) if p.key == "a/p0")
    pods[index] = dataclasses.replace(pods[index], labels=pods[index + 1].labels)
    second = Inventory.of(namespaces=first.namespaces, pods=pods, policies=first.policies)
    memoised = renderer(second, addresses=addresses_of(second))
    peers = 9  # distinct pod peers of the 40 policies (index 0 each)
    assert calls <= 2 * peers + 2 * 9  # changed pod x cached peers, and the regrouped shapes
    monkeypatch.undo()
    assert memoised == render_ruleset(second, addresses=addresses_of(second))
