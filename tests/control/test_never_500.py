"""Property: whatever JSON a client sends as an object, the object service answers with the
object or an ApiError below 500, never another exception (which would be a 500)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubefence.control.app import bootstrap, open_objects
from kubefence.control.kinds import REGISTRY
from kubefence.control.objects import Objects, WriteOptions
from kubefence.control.status import ApiError
from kubefence.control.store.sqlite import SqliteStore

_scalars = st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "spec",
                    "ports",
                    "port",
                    "podSelector",
                    "ingress",
                    "egress",
                    "from",
                    "to",
                    "containers",
                    "matchLabels",
                    "labels",
                    "protocol",
                    "ipBlock",
                    "cidr",
                    "selector",
                    "policyTypes",
                    "metadata",
                    "image",
                    "containerPort",
                    "namespaceSelector",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_KINDS = ("Pod", "Service", "NetworkPolicy", "Namespace", "ConfigMap", "RoleBinding")


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, Objects]]:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(SqliteStore.open(tmp_path_factory.mktemp("never500") / "db"))
    objects, _ = loop.run_until_complete(open_objects(store))
    loop.run_until_complete(bootstrap(objects))
    yield loop, objects
    loop.run_until_complete(store.close())
    loop.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(_KINDS), spec=_json, meta=_json)
def test_any_body_is_an_object_or_a_4xx(
    service: tuple[asyncio.AbstractEventLoop, Objects], kind: str, spec: Any, meta: Any
) -> None:
    loop, objects = service
    rt = REGISTRY.by_kind(kind)
    assert rt is not None
    metadata = meta if isinstance(meta, dict) else {"name": "x"}
    body = {"metadata": metadata, "spec": spec, "ports": spec, "rules": spec, "roleRef": spec}

    async def run() -> None:
        try:
            created = await objects.create(rt, "default", body, WriteOptions())
        except ApiError as error:
            codes.append(error.code)
            return
        meta = created["metadata"]
        await objects.delete(rt, meta.get("namespace", ""), meta["name"])

    codes: list[int] = []
    loop.run_until_complete(run())
    assert all(400 <= code < 500 for code in codes), codes


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    patch_type=st.sampled_from(["json", "merge", "strategic", "apply"]),
    patch=_json
    | st.lists(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
                "path": st.sampled_from(
                    ["", "/spec", "/spec/containers/0", "/metadata/labels/a", "/x/-", "bad"]
                ),
                "value": _json,
                "from": st.sampled_from(["/spec", "/nope"]),
            }
        ),
        max_size=3,
    ),
)
@example(patch_type="apply", patch={"metadata": False})  # once a 500: ownership read metadata
def test_any_patch_is_an_object_or_a_4xx(
    service: tuple[asyncio.AbstractEventLoop, Objects], patch_type: str, patch: Any
) -> None:
    loop, objects = service
    rt = REGISTRY.by_kind("Pod")
    assert rt is not None
    pod = {
        "metadata": {"name": "target", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    }
    codes: list[int] = []

    async def run() -> None:
        try:
            await objects.get(rt, "default", "target")
        except ApiError:
            await objects.create(rt, "default", pod, WriteOptions())
        try:
            await objects.patch(
                rt, "default", "target", patch_type, patch, WriteOptions(manager="m")
            )
        except ApiError as error:
            codes.append(error.code)

    loop.run_until_complete(run())
    assert all(400 <= code < 500 for code in codes), codes
