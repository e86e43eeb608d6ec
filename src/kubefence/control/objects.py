"""The object service: what create/update/patch/delete/list mean, independent of HTTP.

Why a separate module: the HTTP layer (`server.py`) only parses requests and renders answers;
every rule the API server applies to objects lives here once: server-set metadata (uid,
creationTimestamp, resourceVersion = store revision, generation, managedFields), defaulting
then validation (422 with field paths, nothing stored), dryRun, namespaces that must exist, the
`default` ServiceAccount of each namespace, and the cascade when a namespace is deleted.

The stored form (`stored.py`), server-side apply's ownership rules (`ssa.py`) and the per-kind
checks (`kind_checks.py`) live apart. Still longer than 400 lines on purpose: the write paths
(create, update, patch, apply, delete) share the metadata rules and the no-op check, and reading
them side by side in one class is the point.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from kubefence.control.cascade import ORPHANING_MANAGER, orphan_dependents
from kubefence.control.kind_checks import name_problems
from kubefence.control.kinds import NAME_STYLE, REGISTRY
from kubefence.control.patch import (
    apply_json_patch,
    fields_v1,
    merge_patch,
    strategic_merge,
)
from kubefence.control.registry import Registry, ResourceType
from kubefence.control.selectors import FieldSelector, LabelSelector
from kubefence.control.services import ServiceIPs
from kubefence.control.ssa import check_apply_conflicts, prune_for_apply
from kubefence.control.status import ApiError
from kubefence.control.store import (
    Conflict,
    KeyExists,
    KeyMissing,
    Store,
    WatchEvent,
)
from kubefence.control.stored import decode, encode, now_rfc3339, splice
from kubefence.errors import FieldError

__all__ = ["Objects", "WriteOptions"]

Obj = dict[str, Any]
NO_LABELS = LabelSelector()
NO_FIELDS = FieldSelector()
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True, slots=True)
class WriteOptions:
    dry_run: bool = False
    manager: str = ""
    strict: bool = True
    subresource: str = ""


def _problems_outside_unknown(problems: list[FieldError], strict: bool) -> list[FieldError]:
    return problems if strict else [p for p in problems if not p.message.startswith("unknown")]


class Objects:
    """Object semantics over a `Store`. `on_write(kind, object, deleted)` is told after each
    committed write (the server keeps its RBAC cache with it)."""

    def __init__(
        self,
        store: Store,
        *,
        registry: Registry = REGISTRY,
        on_write: Callable[[ResourceType, Obj, bool], None] = lambda rt, obj, deleted: None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.service_ips = ServiceIPs(store)
        self._on_write = on_write

    # -- reads --------------------------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        stored = await self.store.get(rt.key(namespace, name))
        if stored is None:
            raise ApiError.not_found(rt.plural, name, group=rt.group)
        return decode(stored)

    async def list(
        self,
        rt: ResourceType,
        namespace: str,
        *,
        labels: LabelSelector = NO_LABELS,
        fields: FieldSelector = NO_FIELDS,
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[Obj], int, str]:
        """(objects, list revision, continue token)."""
        after = _continue_from(continue_token)
        prefix = rt.prefix(namespace)
        out: list[Obj] = []
        revision = 0
        last_key = after
        filtering = bool(labels.requirements or fields.terms)
        while True:
            want = 0 if limit <= 0 else max(limit - len(out), 1) * (4 if filtering else 1)
            page, revision = await self.store.list(prefix, limit=want, after_key=last_key)
            for stored in page:
                last_key = stored.key
                obj = decode(stored)
                meta = obj["metadata"]
                if labels.requirements and not labels.matches(meta.get("labels") or {}):
                    continue
                if fields.terms and not fields.matches(obj):
                    continue
                out.append(obj)
                if 0 < limit <= len(out):
                    break
            exhausted = want == 0 or len(page) < want
            if exhausted or 0 < limit <= len(out):
                break
        token = ""
        if 0 < limit <= len(out):
            token = await self._continue_token(prefix, revision, last_key)
        return out, revision, token

    async def _continue_token(self, prefix: str, revision: int, last_key: str) -> str:
        """The token of the page after ``last_key`` ("" when nothing follows)."""
        more, _ = await self.store.list(prefix, limit=1, after_key=last_key)
        if not more:
            return ""
        start = json.dumps({"rv": revision, "start": last_key}).encode()
        return base64.urlsafe_b64encode(start).decode()

    async def list_raw(self, rt: ResourceType, namespace: str) -> tuple[builtins.list[bytes], int]:
        """Every object's JSON (spliced, not decoded) and the list revision: the fast path of
        an unfiltered, unpaged list."""
        page, revision = await self.store.list(rt.prefix(namespace))
        return [splice(stored) for stored in page], revision

    async def list_raw_page(
        self, rt: ResourceType, namespace: str, *, limit: int, continue_token: str = ""
    ) -> tuple[builtins.list[bytes], int, str]:
        """One page of an unfiltered list as spliced JSON, its revision and the continue
        token: the fast path of the pagers of informers (client-go and ours ask 500 at a time)."""
        prefix = rt.prefix(namespace)
        page, revision = await self.store.list(
            prefix, limit=limit, after_key=_continue_from(continue_token)
        )
        token = ""
        if page and len(page) >= limit:
            token = await self._continue_token(prefix, revision, page[-1].key)
        return [splice(stored) for stored in page], revision, token

    def watch(self, rt: ResourceType, namespace: str, *, after: int) -> AsyncIterator[WatchEvent]:
        return self.store.watch(rt.prefix(namespace), after=after)

    # -- writes -------------------------------------------------------------------------------

    async def _require_namespace(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced:
            return
        ns_type = self.registry.by_kind("Namespace")
        assert ns_type is not None
        if await self.store.get(ns_type.key("", namespace)) is None:
            raise ApiError.not_found("namespaces", namespace)

    def _check(self, rt: ResourceType, obj: Obj, *, strict: bool) -> None:
        metadata = obj.get("metadata")
        name = metadata.get("name", "") if isinstance(metadata, dict) else ""
        for field in ("spec", "status"):
            if field in obj and obj[field] is None:
                del obj[field]  # null is absent
        problems = _shape_problems(obj)
        if problems:
            raise ApiError.invalid(rt.kind, str(name), problems, group=rt.group)
        with contextlib.suppress(AttributeError, TypeError, ValueError, KeyError):
            rt.default(obj)  # a malformed field fails here: the validator below names it
        problems = name_problems(name, style=NAME_STYLE.get(rt.kind, "subdomain"))
        if not problems:
            problems = _problems_outside_unknown(rt.validate(obj), strict)
        if problems:
            raise ApiError.invalid(rt.kind, name, problems, group=rt.group)

    def _prepare_new(self, rt: ResourceType, namespace: str, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the request body must be an object")
        obj: Obj = dict(body)
        self._check_type(rt, obj)
        metadata = dict(obj.get("metadata") or {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = f"{metadata['generateName']}{secrets.token_hex(3)[:5]}"
        if rt.namespaced:
            body_ns = metadata.get("namespace")
            if body_ns and body_ns != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        for server_set in ("resourceVersion", "selfLink", "deletionTimestamp"):
            metadata.pop(server_set, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        if rt.has_spec:
            metadata["generation"] = 1
        obj["metadata"] = metadata
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        return obj

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        kind, version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, "", rt.kind) or version not in (None, "", rt.group_version):
            raise ApiError.bad_request(
                f"the API version in the data ({version}) does not match the expected API "
                f"version ({rt.group_version})"
                if version not in (None, "", rt.group_version)
                else f"kind {kind!r} does not match the expected kind {rt.kind!r}"
            )

    def _record_manager(self, obj: Obj, manager: str, operation: str, applied: Any) -> None:
        if not manager:
            return
        metadata = obj.setdefault("metadata", {})
        entries = [
            e
            for e in metadata.get("managedFields") or []
            if not (e.get("manager") == manager and e.get("operation") == operation)
        ]
        entries.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": obj.get("apiVersion", ""),
                "time": now_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(applied),
            }
        )
        metadata["managedFields"] = entries

    async def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        opts: WriteOptions,
        *,
        operation: str = "Update",
        applied: Any = None,
    ) -> Obj:
        obj = self._prepare_new(rt, namespace, body)
        name = obj["metadata"].get("name", "")
        self._check(rt, obj, strict=opts.strict)
        await self._require_namespace(rt, namespace)
        key = rt.key(namespace, name)
        if opts.dry_run and await self.store.get(key) is not None:
            raise ApiError.already_exists(rt.plural, name, group=rt.group)
        claimed: list[str] = []
        if rt.kind == "Service":
            claimed = await self.service_ips.on_create(obj, dry_run=opts.dry_run)
        self._record_manager(obj, opts.manager, operation, body if applied is None else applied)
        if opts.dry_run:
            return obj
        try:
            revision = await self.store.create(key, encode(obj))
        except KeyExists:
            await self.service_ips.release(claimed)
            raise ApiError.already_exists(rt.plural, name, group=rt.group) from None
        except BaseException:
            await self.service_ips.release(claimed)
            raise
        obj["metadata"]["resourceVersion"] = str(revision)
        self._on_write(rt, obj, False)
        if rt.kind == "Namespace":
            await self._namespace_created(name)
        return obj

    async def _namespace_created(self, namespace: str) -> None:
        sa_type = self.registry.by_kind("ServiceAccount")
        assert sa_type is not None
        account = {"metadata": {"name": "default"}}
        try:
            await self.create(sa_type, namespace, account, WriteOptions())
        except ApiError as error:
            if error.code != 409:
                raise

    async def update(
        self, rt: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions
    ) -> Obj:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the request body must be an object")
        self._check_type(rt, body)
        problems = _shape_problems(body)
        if problems:
            raise ApiError.invalid(rt.kind, name, problems, group=rt.group)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise ApiError.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        current = await self.get(rt, namespace, name)
        expected = (body.get("metadata") or {}).get("resourceVersion")
        if expected and expected != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt.plural, name, group=rt.group)
        return await self._replace(rt, current, body, opts, operation="Update", applied=body)

    async def _replace(
        self,
        rt: ResourceType,
        current: Obj,
        body: Obj,
        opts: WriteOptions,
        *,
        operation: str,
        applied: Any,
    ) -> Obj:
        """Write `body` over `current` (which it must not have changed meanwhile)."""
        obj: Obj = dict(body)
        if opts.subresource == "status":
            obj = {**current, "status": body.get("status", {})}
        elif "status" in current and rt.subresources and opts.subresource != "binding":
            obj["status"] = current["status"]  # the main resource does not write status
        old_meta = current["metadata"]
        metadata = dict(obj.get("metadata") or {})
        for fixed in ("uid", "creationTimestamp", "name", "namespace", "generation"):
            if fixed in old_meta:
                metadata[fixed] = old_meta[fixed]
            else:
                metadata.pop(fixed, None)
        if "managedFields" not in metadata and "managedFields" in old_meta:
            metadata["managedFields"] = old_meta["managedFields"]
        obj["metadata"] = metadata
        obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
        self._check(rt, obj, strict=opts.strict)
        if rt.has_spec and obj.get("spec") != current.get("spec"):
            metadata["generation"] = int(old_meta.get("generation", 1)) + 1
        claimed: list[str] = []
        released: list[str] = []
        if rt.kind == "Service" and opts.subresource != "status":
            claimed, released = await self.service_ips.on_update(current, obj, dry_run=opts.dry_run)
        self._record_manager(obj, opts.manager, operation, applied)
        version = int(old_meta["resourceVersion"])
        if _same(obj, current):
            return current
        if opts.dry_run:
            return obj
        try:
            revision = await self.store.update(
                rt.key(old_meta.get("namespace", ""), old_meta["name"]),
                encode(obj),
                expected=version,
            )
        except KeyMissing:
            await self.service_ips.release(claimed)
            raise ApiError.not_found(rt.plural, old_meta["name"], group=rt.group) from None
        except Conflict:
            await self.service_ips.release(claimed)
            raise ApiError.conflict(rt.plural, old_meta["name"], group=rt.group) from None
        except BaseException:
            await self.service_ips.release(claimed)
            raise
        await self.service_ips.release(released, owner=current)
        metadata["resourceVersion"] = str(revision)
        self._on_write(rt, obj, False)
        return obj

    async def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        opts: WriteOptions,
        *,
        force: bool = False,
    ) -> tuple[Obj, bool]:
        """(object, created?). Retries on a concurrent write, as the API server does."""
        for _ in range(8):
            try:
                current = await self.get(rt, namespace, name)
            except ApiError as error:
                if error.code == 404 and patch_type == "apply" and not opts.subresource:
                    created = await self._apply_create(rt, namespace, name, patch, opts)
                    return created, True
                raise
            try:
                patched = await self._patch_once(rt, current, patch_type, patch, opts, force=force)
                return patched, False
            except ApiError as error:
                if error.reason != "Conflict" or error.causes or _pinned(patch):
                    raise
        raise ApiError.conflict(rt.plural, name, group=rt.group)

    async def _apply_create(
        self, rt: ResourceType, namespace: str, name: str, patch: Any, opts: WriteOptions
    ) -> Obj:
        if not isinstance(patch, dict):
            raise ApiError.bad_request("apply patch must be an object")
        body = dict(patch)
        body.setdefault("metadata", {})
        body["metadata"] = {**body["metadata"], "name": name}
        return await self.create(rt, namespace, body, opts, operation="Apply", applied=patch)

    async def _patch_once(
        self,
        rt: ResourceType,
        current: Obj,
        patch_type: str,
        patch: Any,
        opts: WriteOptions,
        *,
        force: bool = False,
    ) -> Obj:
        base = current
        if patch_type == "json":
            patched = apply_json_patch(base, patch)
        elif patch_type == "merge":
            patched = merge_patch(base, patch)
        elif patch_type in ("strategic", "apply"):
            if not isinstance(patch, dict):
                raise ApiError.bad_request("patch body must be an object")
            patched = strategic_merge(base, patch)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type!r}")
        if not isinstance(patched, dict):
            raise ApiError.bad_request("the patched object is not an object")
        problems = _shape_problems(patched)
        if problems:
            name = current["metadata"]["name"]
            raise ApiError.invalid(rt.kind, name, problems, group=rt.group)
        if patch_type == "apply":  # ownership rules read metadata: only on a well-shaped object
            prune_for_apply(patched, current, patch, opts.manager)
            check_apply_conflicts(rt, patched, current, patch, opts.manager, force=force)
        patched_meta = patched.get("metadata") or {}
        wanted = patched_meta.get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt.plural, current["metadata"]["name"], group=rt.group)
        operation = "Apply" if patch_type == "apply" else "Update"
        return await self._replace(
            rt,
            current,
            patched,
            opts,
            operation=operation,
            applied=patch if operation == "Apply" else patched,
        )

    async def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        precondition_rv: str = "",
        precondition_uid: str = "",
        orphan: bool = False,
    ) -> Obj:
        """Delete one object; with `orphan`, its dependents first lose their reference to it."""
        current = await self.get(rt, namespace, name)
        if precondition_uid and precondition_uid != current["metadata"].get("uid"):
            raise ApiError.conflict(rt.plural, name, group=rt.group)
        if precondition_rv and precondition_rv != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt.plural, name, group=rt.group)
        if dry_run:
            return current
        if rt.kind == "Namespace":
            await self._empty_namespace(name)
        elif orphan:
            await orphan_dependents(self, rt, current, WriteOptions(manager=ORPHANING_MANAGER))
        try:
            removed = await self.store.delete(rt.key(namespace, name))
        except KeyMissing:
            raise ApiError.not_found(rt.plural, name, group=rt.group) from None
        obj = decode(removed)
        if rt.kind == "Service":
            await self.service_ips.on_delete(obj)
        self._on_write(rt, obj, True)
        return obj

    async def _empty_namespace(self, namespace: str) -> None:
        for rt in self.registry.types:
            if not rt.namespaced or not rt.stored:
                continue
            items, _ = await self.store.list(rt.prefix(namespace))
            for stored in items:
                try:
                    removed = await self.store.delete(stored.key)
                except KeyMissing:
                    continue
                if rt.kind == "Service":
                    await self.service_ips.on_delete(decode(removed))
                self._on_write(rt, decode(removed), True)

    async def ensure_builtin(self) -> None:
        """The namespaces every cluster has, each with its default ServiceAccount."""
        ns_type = self.registry.by_kind("Namespace")
        assert ns_type is not None
        for name in BUILTIN_NAMESPACES:
            if await self.store.get(ns_type.key("", name)) is None:
                await self.create(ns_type, "", {"metadata": {"name": name}}, WriteOptions())
            else:
                await self._namespace_created(name)
        svc_type = self.registry.by_kind("Service")
        assert svc_type is not None
        services, _ = await self.store.list(svc_type.prefix())
        await self.service_ips.repair([decode(stored) for stored in services])


def _continue_from(token: str) -> str:
    """The key a continue token resumes after ("" for no token)."""
    if not token:
        return ""
    try:
        return str(json.loads(base64.urlsafe_b64decode(token))["start"])
    except (ValueError, KeyError, TypeError):
        raise ApiError.bad_request("invalid continue token") from None


def _shape_problems(obj: Obj) -> list[FieldError]:
    """The shape every object has: metadata an object with string name and string maps."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [FieldError("Invalid value: must be an object", "metadata")]
    problems = []
    for field in ("name", "namespace", "generateName"):
        if field in metadata and not isinstance(metadata[field], str):
            problems.append(FieldError("Invalid value: must be a string", f"metadata.{field}"))
    for field in ("labels", "annotations"):
        value = metadata.get(field)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            problems.append(
                FieldError("Invalid value: must be a map of strings", f"metadata.{field}")
            )
    for field in ("spec", "status"):
        if field in obj and obj[field] is not None and not isinstance(obj[field], dict):
            problems.append(FieldError("Invalid value: must be an object", field))
    return problems


def _pinned(patch: Any) -> bool:
    """A patch that names a resourceVersion must not be retried on conflict."""
    return isinstance(patch, dict) and bool((patch.get("metadata") or {}).get("resourceVersion"))


def _same(new: Obj, old: Obj) -> bool:
    """Equal apart from resourceVersion and managedFields timestamps: a no-op write."""

    def strip(obj: Obj) -> Obj:
        meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
        meta["managedFields"] = [
            {k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []
        ]
        return {**obj, "metadata": meta}

    return strip(new) == strip(old)
