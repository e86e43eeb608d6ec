"""``Kube.list`` pages through a collection and reads each page with the caller's decoder.

Why this module exists: the agent's pod informer hands ``Kube.list`` (through ``Informer``) a
decoder that keeps only what it reads; these tests pin that every page goes through it, that
the continue tokens are followed and that the list's resourceVersion (which the watch starts
from) is the first page's, over a scripted transport.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubefence.client import Informer, Kube, Resource


@dataclass
class _Answer:
    status: int
    body: bytes

    def read(self) -> bytes:
        return self.body


class PagedKube(Kube):
    """Serves three pages of a collection, each with its own resourceVersion."""

    def __init__(self) -> None:
        super().__init__(api=None)
        self.queries: list[dict[str, str]] = []

    def _send(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
              **_: Any) -> _Answer:  # fmt: skip
        query = dict(query or {})
        self.queries.append(query)
        index = int(query.get("continue") or 0)
        metadata: dict[str, Any] = {"resourceVersion": str(10 + index)}
        if index < 2:
            metadata["continue"] = str(index + 1)
        items = [{"metadata": {"name": f"p{index}-{i}", "namespace": "n"}, "spec": {"x": i}}
                 for i in range(2)]  # fmt: skip
        return _Answer(200, json.dumps({"metadata": metadata, "items": items}).encode())


def test_every_page_goes_through_the_decoder_and_the_first_version_is_kept() -> None:
    kube = PagedKube()
    seen: list[int] = []

    def decode(data: bytes) -> dict[str, Any]:
        page = json.loads(data)
        seen.append(len(data))
        for item in page["items"]:
            item.pop("spec")  # what a slim decoder does: skip what the caller never reads
        return dict(page)

    items, version = kube.list("/api/v1/pods", page=2, decode=decode)
    assert len(seen) == 3
    assert [i["metadata"]["name"] for i in items] == [f"p{p}-{i}" for p in range(3)
                                                       for i in range(2)]  # fmt: skip
    assert all("spec" not in i for i in items)
    assert version == "10"
    assert [q.get("continue", "") for q in kube.queries] == ["", "1", "2"]
    assert all(q["limit"] == "2" for q in kube.queries)


def test_without_a_decoder_pages_are_plain_json() -> None:
    items, version = PagedKube().list("/api/v1/pods")
    assert len(items) == 6
    assert all(i["spec"] in ({"x": 0}, {"x": 1}) for i in items)
    assert version == "10"


def test_the_informer_lists_with_its_decoder() -> None:
    kube = PagedKube()
    calls: list[int] = []

    def decode(data: bytes) -> dict[str, Any]:
        calls.append(1)
        return dict(json.loads(data))

    informer = Informer(kube, Resource("", "v1", "pods"), resync=0, decode=decode)
    informer._relist()
    assert len(calls) == 3
    assert len(informer.items) == 6
    assert informer.resource_version == "10"
