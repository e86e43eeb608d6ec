"""ClusterIP allocation in process (no server): uniqueness under concurrency, the bands, the
records in the store, persistence across a restart, release and repair."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from kubefence.control.app import bootstrap, open_objects
from kubefence.control.kinds import REGISTRY
from kubefence.control.objects import Objects, WriteOptions
from kubefence.control.services import PREFIX, SERVICE_RANGE_V4, SERVICE_RANGE_V6, UNDERLAY
from kubefence.control.status import ApiError
from kubefence.control.store.sqlite import SqliteStore

SVC = REGISTRY.by_kind("Service")
NS = REGISTRY.by_kind("Namespace")
assert SVC is not None
assert NS is not None


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


async def opened(path: Path) -> tuple[SqliteStore, Objects]:
    store = await SqliteStore.open(path)
    objects, _ = await open_objects(store)
    await bootstrap(objects)
    return store, objects


async def records(store: SqliteStore) -> dict[str, dict[str, Any]]:
    items, _ = await store.list(PREFIX)
    return {s.key[len(PREFIX) :]: json.loads(s.value) for s in items}


def test_concurrent_creates_get_distinct_addresses_from_the_upper_band(tmp_path: Path) -> None:
    async def body() -> None:
        store, objects = await opened(tmp_path / "db")
        made = await asyncio.gather(
            *(objects.create(SVC, "default", service(f"s{i}"), WriteOptions()) for i in range(60))
        )
        ips = [m["spec"]["clusterIP"] for m in made]
        assert len(set(ips)) == 60
        for ip in map(ipaddress.ip_address, ips):
            assert ip in SERVICE_RANGE_V4
            assert ip not in UNDERLAY
            assert int(ip) - int(SERVICE_RANGE_V4.network_address) > 256  # not the static band
        assert set(await records(store)) == set(ips)
        assert all(m["spec"]["clusterIPs"] == [m["spec"]["clusterIP"]] for m in made)
        assert all(m["spec"]["ipFamilies"] == ["IPv4"] for m in made)
        await store.close()

    asyncio.run(body())


def test_allocations_survive_a_restart_and_are_released_on_delete(tmp_path: Path) -> None:
    async def body() -> None:
        store, objects = await opened(tmp_path / "db")
        first = await objects.create(SVC, "default", service("a"), WriteOptions())
        await store.close()
        store, objects = await opened(tmp_path / "db")
        ip = first["spec"]["clusterIP"]
        assert ip in await records(store)
        with pytest.raises(ApiError) as taken:
            await objects.create(SVC, "default", service("b", clusterIP=ip), WriteOptions())
        assert taken.value.code == 422
        assert taken.value.message == (
            f'Service "b" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: '
            f"failed to allocate IP {ip}: provided IP is already allocated"
        )
        await objects.delete(SVC, "default", "a")
        assert ip not in await records(store)
        again = await objects.create(SVC, "default", service("b", clusterIP=ip), WriteOptions())
        assert again["spec"]["clusterIPs"] == [ip]
        await store.close()

    asyncio.run(body())


def test_repair_frees_orphans_and_records_unrecorded_addresses(tmp_path: Path) -> None:
    async def body() -> None:
        store, objects = await opened(tmp_path / "db")
        made = await objects.create(SVC, "default", service("a"), WriteOptions())
        ip = made["spec"]["clusterIP"]
        await store.delete(PREFIX + ip)  # as if the server died between the two writes
        await store.create(PREFIX + "198.19.7.7", b'{"uid": "gone"}')
        await store.close()
        store, objects = await opened(tmp_path / "db")
        assert set(await records(store)) == {ip}
        await store.close()

    asyncio.run(body())


def test_a_failed_create_releases_what_it_claimed(tmp_path: Path) -> None:
    async def body() -> None:
        store, objects = await opened(tmp_path / "db")
        await objects.create(SVC, "default", service("a"), WriteOptions())
        with pytest.raises(ApiError) as exists:
            await objects.create(
                SVC, "default", service("a", clusterIP="198.19.0.20"), WriteOptions()
            )
        assert exists.value.code == 409
        assert "198.19.0.20" not in await records(store)
        dry = await objects.create(SVC, "default", service("d"), WriteOptions(dry_run=True))
        assert dry["spec"]["clusterIP"] not in await records(store)
        assert len(await records(store)) == 1
        await store.close()

    asyncio.run(body())


def test_range_and_underlay_are_enforced_with_the_api_servers_words(tmp_path: Path) -> None:
    async def body() -> None:
        store, objects = await opened(tmp_path / "db")
        with pytest.raises(ApiError) as outside:
            await objects.create(
                SVC, "default", service("a", clusterIP="198.18.3.3"), WriteOptions()
            )
        assert outside.value.message == (
            'Service "a" is invalid: spec.clusterIPs: Invalid value: []string{"198.18.3.3"}: '
            "failed to allocate IP 198.18.3.3: the provided IP (198.18.3.3) is not in the valid "
            "range. The range of valid IPs is 198.19.0.0/16"
        )
        for bad in ("198.19.255.4", "198.19.0.0", "198.19.255.255"):
            with pytest.raises(ApiError) as refused:
                await objects.create(SVC, "default", service("a", clusterIP=bad), WriteOptions())
            assert refused.value.code == 422
        assert await records(store) == {}
        await store.close()

    asyncio.run(body())


def test_updates_keep_refuse_and_release(tmp_path: Path) -> None:
    async def body() -> None:
        store, objects = await opened(tmp_path / "db")
        made = await objects.create(SVC, "default", service("a"), WriteOptions())
        ip = made["spec"]["clusterIP"]
        # A replace without the address keeps it (as kube-apiserver does).
        kept = await objects.update(SVC, "default", "a", service("a"), WriteOptions())
        assert kept["spec"]["clusterIPs"] == [ip]
        with pytest.raises(ApiError) as changed:
            await objects.update(
                SVC, "default", "a", service("a", clusterIP="198.19.0.30"), WriteOptions()
            )
        assert changed.value.message == (
            'Service "a" is invalid: spec.clusterIPs[0]: Invalid value: []string{"198.19.0.30"}: '
            "may not change once set"
        )
        assert set(await records(store)) == {ip}
        external = await objects.update(
            SVC, "default", "a",
            {"metadata": {"name": "a"}, "spec": {"type": "ExternalName", "externalName": "x.org"}},
            WriteOptions(),
        )  # fmt: skip
        assert "clusterIP" not in external["spec"]
        assert await records(store) == {}
        back = await objects.update(SVC, "default", "a", service("a"), WriteOptions())
        assert ipaddress.ip_address(back["spec"]["clusterIP"]) in SERVICE_RANGE_V4
        assert set(await records(store)) == {back["spec"]["clusterIP"]}
        await store.close()

    asyncio.run(body())


def test_dual_stack_headless_and_namespace_cascade(tmp_path: Path) -> None:
    async def body() -> None:
        store, objects = await opened(tmp_path / "db")
        await objects.create(NS, "", {"metadata": {"name": "x"}}, WriteOptions())
        dual = await objects.create(
            SVC, "x", service("d", ipFamilyPolicy="RequireDualStack"), WriteOptions()
        )
        v4, v6 = map(ipaddress.ip_address, dual["spec"]["clusterIPs"])
        assert v4 in SERVICE_RANGE_V4
        assert v6 in SERVICE_RANGE_V6
        assert dual["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
        dual_spec = {**dual["spec"], "ipFamilyPolicy": "SingleStack"}
        down = await objects.update(SVC, "x", "d", {**dual, "spec": dual_spec}, WriteOptions())
        assert down["spec"]["clusterIPs"] == [str(v4)]
        assert down["spec"]["ipFamilies"] == ["IPv4"]
        assert str(v6) not in await records(store)
        up = await objects.update(
            SVC, "x", "d", {**down, "spec": {**down["spec"], "ipFamilyPolicy": "PreferDualStack"}},
            WriteOptions(),
        )  # fmt: skip
        assert up["spec"]["clusterIPs"][0] == str(v4)
        assert ipaddress.ip_address(up["spec"]["clusterIPs"][1]) in SERVICE_RANGE_V6
        six = await objects.create(SVC, "x", service("six", ipFamilies=["IPv6"]), WriteOptions())
        assert ipaddress.ip_address(six["spec"]["clusterIP"]) in SERVICE_RANGE_V6
        headless = await objects.create(SVC, "x", service("h", clusterIP="None"), WriteOptions())
        assert headless["spec"]["clusterIPs"] == ["None"]
        dns = await objects.create(
            SVC, "x", service("dns", clusterIP="198.19.0.10"), WriteOptions()
        )
        assert dns["spec"]["clusterIPs"] == ["198.19.0.10"]
        assert len(await records(store)) == 4
        await objects.delete(NS, "", "x")
        assert await records(store) == {}
        await store.close()

    asyncio.run(body())
