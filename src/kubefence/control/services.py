"""Service ClusterIPs: allocated from the service range, recorded in the store, freed on delete.

Why this module exists: `kubectl run --expose`, `kubectl get svc` and the node's Service DNAT all
need each Service to own a unique, stable address, as kube-apiserver's allocator gives it. The
rules kept here are the API server's:

* the ranges are 198.19.0.0/16 (IPv4; 198.19.255.0/24 is the node underlay and never handed out)
  and fd00:6b66:5e::/112 (IPv6, used when a Service asks for dual-stack or IPv6); kube-dns is
  198.19.0.10;
* the low band of each range (its first 256 addresses, upstream's "static" band) is given only
  to Services that ask for an address, so a fixed address such as kube-dns's never collides
  with a random one; random addresses come from the rest, then from the low band when it is full;
* an address the user gives is honoured or refused with kube-apiserver's words ("failed to
  allocate IP X: provided IP is already allocated", "... is not in the valid range ...");
* every allocated address is one key in the store (``/registry/kubefence/serviceips/<ip>``,
  like upstream's IPAddress objects), created with create-if-absent, so two concurrent creates
  can never share an address, and a restarted server keeps its allocations;
* addresses are released when their Service is deleted (also by a namespace's cascade) or turns
  into an ExternalName; ``repair`` (run at start) fixes what a crash between the two writes left.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import secrets
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import yaml

from kubefence.control.status import ApiError
from kubefence.control.store import KeyExists, KeyMissing, Store
from kubefence.errors import FieldError

__all__ = [
    "KUBE_DNS_IP",
    "SERVICE_RANGE_V4",
    "SERVICE_RANGE_V6",
    "ServiceIPs",
    "addon_objects",
    "allocation_key",
]

Obj = dict[str, Any]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SERVICE_RANGE_V4 = ipaddress.IPv4Network("198.19.0.0/16")
SERVICE_RANGE_V6 = ipaddress.IPv6Network("fd00:6b66:5e::/112")
UNDERLAY = ipaddress.IPv4Network("198.19.255.0/24")
KUBE_DNS_IP = "198.19.0.10"
PREFIX = "/registry/kubefence/serviceips/"
STATIC_BAND = 256  # upstream: size/16 clamped to [16, 256]; 256 for both ranges here
RANGES: dict[str, IPNetwork] = {"IPv4": SERVICE_RANGE_V4, "IPv6": SERVICE_RANGE_V6}


def allocation_key(ip: str) -> str:
    return PREFIX + ip


def _family(ip: IPAddress) -> str:
    return "IPv4" if ip.version == 4 else "IPv6"


def _usable(network: IPNetwork) -> tuple[int, int]:
    """(first, last) host offsets: the network address (and IPv4's broadcast) are never used."""
    size = network.num_addresses
    return 1, size - 2 if network.version == 4 else size - 1


def _reserved(ip: IPAddress) -> bool:
    return ip.version == 4 and ip in UNDERLAY


class ServiceIPs:
    """Allocation of ClusterIPs over a `Store` (one key per address)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- the hooks Objects calls ----------------------------------------------------------

    async def on_create(self, service: Obj, *, dry_run: bool) -> list[str]:
        """Fill ``spec.clusterIP(s)`` and ``ipFamilies`` of a new Service, claiming addresses.
        Returns the addresses claimed (to release if the create then fails)."""
        spec = service.get("spec")
        if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
            return []
        return await self._fill(service, spec, kept=(), dry_run=dry_run)

    async def on_update(self, old: Obj, new: Obj, *, dry_run: bool) -> tuple[list[str], list[str]]:
        """Carry the old addresses into an update that omits them, refuse a changed primary
        address, allocate on a change from ExternalName. Returns (claimed now, to release once
        the update is stored)."""
        spec = new.get("spec")
        old_spec = old.get("spec") or {}
        if not isinstance(spec, dict):
            return [], []
        old_ips = [ip for ip in old_spec.get("clusterIPs") or [] if ip and ip != "None"]
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return [], old_ips
        if old_spec.get("type") != "ExternalName" and old_spec.get("clusterIPs"):
            given = _given(spec)
            if not given:
                spec["clusterIP"] = old_spec.get("clusterIP", old_spec["clusterIPs"][0])
                spec["clusterIPs"] = list(old_spec["clusterIPs"])
                if old_spec.get("ipFamilies"):
                    spec.setdefault("ipFamilies", list(old_spec["ipFamilies"]))
            elif given[0] != old_spec["clusterIPs"][0]:
                raise _invalid(
                    new, "spec.clusterIPs[0]", f"Invalid value: {_go_list(given)}: may not change "
                    "once set"
                )  # fmt: skip
        kept_ips = _given(spec)
        single = (spec.get("ipFamilyPolicy") or "SingleStack") == "SingleStack"
        if single and len(kept_ips) > 1 and kept_ips == old_ips:
            # Downgrade to single-stack: the secondary address goes, as upstream does.
            spec["clusterIP"], spec["clusterIPs"] = kept_ips[0], kept_ips[:1]
            spec["ipFamilies"] = list(spec.get("ipFamilies") or [])[:1]
        claimed = await self._fill(new, spec, kept=old_ips, dry_run=dry_run)
        now = set(spec.get("clusterIPs") or [])
        return claimed, [ip for ip in old_ips if ip not in now]

    async def release(self, ips: Iterable[str], *, owner: Obj | None = None) -> None:
        """Free addresses (only those recorded for ``owner``'s uid when an owner is given)."""
        uid = ((owner or {}).get("metadata") or {}).get("uid")
        for ip in ips:
            if not ip or ip == "None":
                continue
            key = allocation_key(ip)
            if uid is not None:
                stored = await self.store.get(key)
                if stored is None or json.loads(stored.value).get("uid") != uid:
                    continue
            with contextlib.suppress(KeyMissing):
                await self.store.delete(key)

    async def on_delete(self, service: Obj) -> None:
        spec = service.get("spec") or {}
        await self.release(spec.get("clusterIPs") or [], owner=service)

    async def repair(self, services: Sequence[Obj]) -> tuple[int, int]:
        """Make the records match the stored Services: record what a Service holds without a
        record, free records no Service holds. Returns (recorded, freed)."""
        held: dict[str, Obj] = {}
        for service in services:
            for ip in (service.get("spec") or {}).get("clusterIPs") or []:
                if ip and ip != "None":
                    held[_normal(ip)] = service
        records, _ = await self.store.list(PREFIX)
        recorded = 0
        freed = 0
        present = set()
        for stored in records:
            ip = stored.key[len(PREFIX) :]
            present.add(ip)
            owner = held.get(ip)
            uid = json.loads(stored.value).get("uid")
            if owner is None or owner["metadata"].get("uid") != uid:
                try:
                    await self.store.delete(stored.key)
                    freed += 1
                except KeyMissing:
                    pass
                present.discard(ip)
        for ip, service in held.items():
            if ip not in present:
                try:
                    await self.store.create(allocation_key(ip), _record(service))
                    recorded += 1
                except KeyExists:
                    pass
        return recorded, freed

    # -- allocation --------------------------------------------------------------------------

    async def _fill(
        self, service: Obj, spec: Obj, *, kept: Sequence[str], dry_run: bool
    ) -> list[str]:
        given = _given(spec)
        if given and given[0] == "None":
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
            return []
        if (
            spec.get("clusterIP")
            and spec.get("clusterIPs")
            and spec["clusterIPs"][0] != spec["clusterIP"]
        ):
            raise _invalid(
                service, "spec.clusterIPs[0]",
                f'Invalid value: "{spec["clusterIPs"][0]}": must match `clusterIP` if specified',
            )  # fmt: skip
        parsed = [_parse(service, ip) for ip in given]
        families = _families(service, spec, parsed)
        claimed: list[str] = []
        addresses: list[str] = []
        try:
            for index, family in enumerate(families):
                if index < len(parsed):
                    ip = str(parsed[index])
                    if ip not in kept:
                        await self._claim_given(service, given, parsed[index], dry_run=dry_run)
                        if not dry_run:
                            claimed.append(ip)
                else:
                    ip = await self._claim_next(service, RANGES[family], dry_run=dry_run)
                    if not dry_run:
                        claimed.append(ip)
                addresses.append(ip)
        except BaseException:
            await self.release(claimed)
            raise
        spec["clusterIP"] = addresses[0]
        spec["clusterIPs"] = addresses
        spec["ipFamilies"] = families
        return claimed

    async def _claim_given(
        self, service: Obj, given: list[str], ip: IPAddress, *, dry_run: bool
    ) -> None:
        network = RANGES[_family(ip)]
        first, last = _usable(network)
        offset = int(ip) - int(network.network_address)
        if ip not in network or not first <= offset <= last:
            reason = (
                f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is "
                f"{network}"
            )
        elif _reserved(ip):
            reason = f"the provided IP ({ip}) is reserved for the node underlay ({UNDERLAY})"
        elif dry_run:
            reason = "" if await self.store.get(allocation_key(str(ip))) is None else "taken"
        else:
            reason = "" if await self._take(str(ip), service) else "taken"
        if reason == "taken":
            reason = "provided IP is already allocated"
        if reason:
            raise _invalid(
                service,
                "spec.clusterIPs",
                f"Invalid value: {_go_list(given)}: failed to allocate IP {ip}: {reason}",
            )

    async def _claim_next(self, service: Obj, network: IPNetwork, *, dry_run: bool) -> str:
        """A random free address of the upper band, else of the static band."""
        first, last = _usable(network)
        base = int(network.network_address)
        bands = [(first + STATIC_BAND, last), (first, first + STATIC_BAND - 1)]
        for low, high in bands:
            size = high - low + 1
            start = secrets.randbelow(size)
            # Random probes first (cheap while the band is sparse), then one full scan.
            probes = (low + secrets.randbelow(size) for _ in range(min(size, 32)))
            scan = (low + (start + step) % size for step in range(size))
            for offset in itertools.chain(probes, scan):
                ip = ipaddress.ip_address(base + offset)
                if _reserved(ip):
                    continue
                text = str(ip)
                if dry_run:
                    if await self.store.get(allocation_key(text)) is None:
                        return text
                elif await self._take(text, service):
                    return text
        raise ApiError(
            500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: "
            "range is full"
        )  # fmt: skip

    async def _take(self, ip: str, service: Obj) -> bool:
        try:
            await self.store.create(allocation_key(ip), _record(service))
        except KeyExists:
            return False
        return True


def _record(service: Obj) -> bytes:
    meta = service.get("metadata") or {}
    return json.dumps(
        {
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid"),
        }
    ).encode()


def _given(spec: Obj) -> list[str]:
    many = [str(ip) for ip in spec.get("clusterIPs") or [] if ip]
    if many:
        return many
    return [str(spec["clusterIP"])] if spec.get("clusterIP") else []


def _normal(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def _parse(service: Obj, text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _invalid(
            service, "spec.clusterIPs", f'Invalid value: "{text}": must be a valid IP address'
        ) from None


def _families(service: Obj, spec: Obj, given: list[IPAddress]) -> list[str]:
    """The families to allocate, in order: those of the given addresses first, then those of
    ``ipFamilies``, with the second family added for PreferDualStack/RequireDualStack."""
    families = [_family(ip) for ip in given]
    if len(set(families)) != len(families):
        raise _invalid(
            service, "spec.clusterIPs[1]", f"Invalid value: {_go_list([str(i) for i in given])}: "
            "may not have the same family as clusterIPs[0]"
        )  # fmt: skip
    asked = [f for f in spec.get("ipFamilies") or [] if f in RANGES]
    policy = spec.get("ipFamilyPolicy") or "SingleStack"
    if given and asked == ["IPv4"] and families[0] == "IPv6":
        asked = []  # the defaulted family yields to the address the user gave
    for family in asked:
        if family not in families:
            families.append(family)
    if not families:
        families = ["IPv4"]
    if policy in ("PreferDualStack", "RequireDualStack"):
        for family in ("IPv4", "IPv6"):
            if family not in families:
                families.append(family)
    elif len(families) > 1 and policy == "SingleStack":
        raise _invalid(
            service, "spec.ipFamilyPolicy", 'Invalid value: "SingleStack": must be '
            "RequireDualStack or PreferDualStack when multiple IP families are specified"
        )  # fmt: skip
    return families[:2]


def _go_list(values: Sequence[str]) -> str:
    """A string list as Go's ``%#v`` prints it, which kube-apiserver's messages quote."""
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def _invalid(service: Obj, path: str, message: str) -> ApiError:
    name = str((service.get("metadata") or {}).get("name", ""))
    return ApiError.invalid("Service", name, [FieldError(message, path)])


def addon_objects(name: str = "kube-dns") -> list[Obj]:
    """The objects of a bundled addon (``data/addons/<name>.yaml``), in file order: for the
    cluster's start to create (kube-dns: its Service at ``KUBE_DNS_IP`` and its Deployment)."""

    text = resources.files("kubefence.control").joinpath(f"data/addons/{name}.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
