"""Pods kept in (namespace, name) order and updated one at a time, for the agent's store.

Why this module exists: the inventory the planner reads lists pods in that order, and the
agent's store must keep it after every single pod change without a Python loop over ten
thousand pods: ``bisect`` finds the place and the list moves by ``memmove``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection

from kubefence.agent._relevant import Relevance
from kubefence.api import Pod

__all__ = ["SortedPods"]


class SortedPods:
    """Pods by key, in (namespace, name) order, with O(log n) look-up and O(n) memmove
    updates (no Python loop over the pods), and the tuple built only when it changed."""

    __slots__ = ("_by_key", "_order", "_pods", "_tuple")

    def __init__(self) -> None:
        self._order: list[tuple[str, str]] = []
        self._pods: list[Pod] = []
        self._by_key: dict[str, Pod] = {}
        self._tuple: tuple[Pod, ...] | None = ()

    def __len__(self) -> int:
        return len(self._pods)

    def get(self, key: str) -> Pod | None:
        return self._by_key.get(key)

    def put(self, key: str, pod: Pod | None) -> None:
        """Keep ``pod`` under ``key`` (None: drop it)."""
        namespace, _, name = key.partition("/")
        place = (namespace, name)
        index = bisect_left(self._order, place)
        present = index < len(self._order) and self._order[index] == place
        if pod is None:
            if not present:
                return
            del self._order[index]
            del self._pods[index]
            del self._by_key[key]
        elif present:
            if self._pods[index] is pod:
                return
            self._pods[index] = pod
            self._by_key[key] = pod
        else:
            self._order.insert(index, place)
            self._pods.insert(index, pod)
            self._by_key[key] = pod
        self._tuple = None

    def pods(self) -> tuple[Pod, ...]:
        if self._tuple is None:
            self._tuple = tuple(self._pods)
        return self._tuple

    def copy(self) -> SortedPods:
        other = SortedPods()
        other._order = list(self._order)
        other._pods = list(self._pods)
        other._by_key = dict(self._by_key)
        other._tuple = self._tuple
        return other

    def filtered(self, relevance: Relevance, local: Collection[str]) -> SortedPods:
        """The pods ``relevance`` keeps (``local``: this node's keys)."""
        other = SortedPods()
        for (namespace, name), pod in zip(self._order, self._pods, strict=True):
            key = f"{namespace}/{name}"
            if relevance.keeps(pod, local=key in local):
                other._order.append((namespace, name))
                other._pods.append(pod)
                other._by_key[key] = pod
        other._tuple = None
        return other
