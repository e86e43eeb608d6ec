"""Manifest documents to an ``Inventory``: API-server defaulting and validation in one pass.

Why this module exists: kubefence must answer questions only about manifests a real cluster would
accept, and must say precisely why it refuses the others. Each object is walked once; every field
is type-checked, validated (``_validate``) and defaulted as the API server would, and every
problem is recorded as a ``FieldError`` with the file, line, object and API-server field path.
Only when the whole input set is clean does an ``Inventory`` exist (nothing is half-loaded).

This module reads what every kind shares (apiVersion and kind, lists, ``metadata``), hands each
object to the parser of its kind (``_parse_policy``, ``_parse_pods``, ``_parse_service``), and
checks what spans objects: duplicates (also pods generated from workloads) and namespaces.
Lists: the items of ``kind: List`` name their own kinds; the items of a typed list as the API
server returns it (``PodList``, ``NetworkPolicyList``, ...) name none: their kind is the list's
without ``List`` and their apiVersion the list's, and one that names either must agree. A typed
list of a kind kubefence does not read counts its items as skipped objects of that kind.

Defaulting applied here (see docs/semantics.md):

- S16: every namespace carries ``kubernetes.io/metadata.name=<name>`` (set, as the API server
  does, even over a different value in the manifest).
- Objects without a namespace go to the default namespace; a namespace that is referenced but
  not declared is created (``implicit=True``) with a note. Unknown kinds are counted and skipped.

Validation (SEMANTICS V01-V07, with the deliberate differences listed in ``_validate``): names,
strict fields of ``metadata`` for every kind, wrong types anywhere, apiVersion per kind,
duplicate objects. Objects passed in memory have no lines: their ``Origin.line`` is 0 and their
problems carry no line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubefence.api._cnp_models import ClusterNetworkPolicy
from kubefence.api._cnp_nodes import node
from kubefence.api._cnp_parse import TIER_API_VERSIONS, tiered_policy
from kubefence.api._inventory import Inventory
from kubefence.api._models import (
    METADATA_NAME_LABEL,
    Labels,
    Namespace,
    NetworkPolicy,
    Node,
    Origin,
    Pod,
    Service,
)
from kubefence.api._parse_fields import METADATA_FIELDS, ObjectReader, clip, show, type_name
from kubefence.api._parse_pods import pod, workload_pods
from kubefence.api._parse_policy import network_policy
from kubefence.api._parse_service import service
from kubefence.api._tree import Document, member_line
from kubefence.api._validate import (
    dns1035_label_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
)
from kubefence.errors import FieldError, ValidationError

__all__ = ["build_inventory"]

# The kinds kubefence reads, and the apiVersion each must carry.
API_VERSIONS: Mapping[str, str] = {
    "Namespace": "v1",
    "Pod": "v1",
    "Service": "v1",
    "ReplicationController": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    **TIER_API_VERSIONS,  # cluster-scoped tiered policies (``_cnp_parse``)
    "Node": "v1",  # for the tiers' ``nodes`` peer (``_cnp_nodes``)
}


class _Builder:
    """Accumulates objects and problems over all documents of an input set."""

    def __init__(self, default_namespace: str) -> None:
        self.default_namespace = default_namespace
        self.problems: list[FieldError] = []
        self.notes: list[str] = []
        self.namespaces: list[Namespace] = []
        self.pods: list[Pod] = []
        self.services: list[Service] = []
        self.policies: list[NetworkPolicy] = []
        self.admin_policies: list[ClusterNetworkPolicy] = []
        self.nodes: list[Node] = []
        self.skipped: dict[str, int] = {}
        self.seen: dict[tuple[str, str, str], str] = {}  # (kind, ns, name) -> where first seen
        self.referenced: dict[str, str] = {}  # namespace -> first object naming it

    def add(self, document: Document) -> None:
        content = document.content
        label = f"document {document.index + 1}"
        if not isinstance(content, Mapping):
            self.problems.append(
                FieldError(
                    f"must be a Kubernetes object (a mapping with apiVersion and kind), not "
                    f"{type_name(content)}",
                    file=document.file,
                    line=document.line,
                    object=label,
                )
            )
            return
        self._add_object(content, document, label=label, line=document.line)

    def _add_object(
        self, raw: Mapping[Any, Any], document: Document, *, label: str, line: int | None
    ) -> None:
        obj = ObjectReader(self.problems, file=document.file, line=line, label=label)
        kind = obj.string(raw, "kind", "kind")
        api_version = obj.string(raw, "apiVersion", "apiVersion")
        if kind is None or api_version is None:
            for field, example in (("apiVersion", "v1"), ("kind", "Pod")):
                if raw.get(field) is None:
                    obj.fail(field, f"is required (e.g. {field}: {example})", line)
            return
        if kind == "List":
            items = obj.sequence(raw, "items", "items") or []
            for at, item, item_line in obj.entries(items, "items", Mapping, "an object"):
                self._add_object(item, document, label=f"{label}, {at}", line=item_line or line)
            return
        item_kind = kind.removesuffix("List") if kind.endswith("List") else ""
        if item_kind in API_VERSIONS:
            self._add_typed_list(
                obj, raw, document, kind=kind, api_version=api_version, label=label, line=line
            )
            return
        expected = API_VERSIONS.get(kind)
        if expected is None:
            listed = raw.get("items")
            if item_kind and isinstance(listed, list | tuple):
                if listed:  # an unknown typed list: its items are counted as what they are
                    self.skipped[item_kind] = self.skipped.get(item_kind, 0) + len(listed)
            else:
                self.skipped[kind] = self.skipped.get(kind, 0) + 1
            return
        if api_version != expected:
            obj.fail(
                "apiVersion",
                f"no kind {kind!r} in {api_version!r}: use apiVersion: {expected}",
                member_line(raw, "apiVersion"),
            )
            return
        self._add_known(obj, raw, kind=kind, document=document, line=line)

    def _add_typed_list(
        self,
        obj: ObjectReader,
        raw: Mapping[Any, Any],
        document: Document,
        *,
        kind: str,
        api_version: str,
        label: str,
        line: int | None,
    ) -> None:
        """A ``PodList``, ``NetworkPolicyList``, ... as the API server returns them: the items
        carry no apiVersion and kind; they are the list's, without ``List`` for the kind. An item
        that names its own must agree with the list (``decodeToList`` in apimachinery infers them
        the same way)."""
        item_kind = kind.removesuffix("List")
        expected = API_VERSIONS[item_kind]
        if api_version != expected:
            obj.fail(
                "apiVersion",
                f"no kind {kind!r} in {api_version!r}: use apiVersion: {expected}",
                member_line(raw, "apiVersion"),
            )
            return
        items = obj.sequence(raw, "items", "items") or []
        for at, item, item_line in obj.entries(items, "items", Mapping, "an object"):
            given_kind = obj.string(item, "kind", f"{at}.kind")
            given_version = obj.string(item, "apiVersion", f"{at}.apiVersion")
            if given_kind not in (None, item_kind):
                obj.fail(
                    f"{at}.kind",
                    f"invalid value {show(given_kind)}: an item of a {kind} must be a "
                    f"{item_kind} (or name no kind)",
                    member_line(item, "kind"),
                )
            elif given_version not in (None, api_version):
                obj.fail(
                    f"{at}.apiVersion",
                    f"invalid value {show(given_version)}: an item of a {kind} must have "
                    f"apiVersion {api_version} (or name none)",
                    member_line(item, "apiVersion"),
                )
            else:
                item_label = f"{label}, {at}"
                reader = ObjectReader(
                    self.problems, file=document.file, line=item_line or line, label=item_label
                )
                self._add_known(
                    reader, item, kind=item_kind, document=document, line=item_line or line
                )

    def _add_known(
        self,
        obj: ObjectReader,
        raw: Mapping[Any, Any],
        *,
        kind: str,
        document: Document,
        line: int | None,
    ) -> None:
        metadata = obj.mapping(raw, "metadata", "metadata")
        if metadata is None:
            if raw.get("metadata") is None:
                obj.fail("metadata.name", "is required", line)
            return
        metadata_line = member_line(raw, "metadata")
        name = obj.string(metadata, "name", "metadata.name")
        namespaced = kind not in ("Namespace", "Node") and kind not in TIER_API_VERSIONS
        namespace = self.default_namespace
        if namespaced:
            given = obj.string(metadata, "namespace", "metadata.namespace")
            if given:
                namespace = given
                obj.invalid(
                    "metadata.namespace",
                    given,
                    dns1123_label_problems(given),
                    member_line(metadata, "namespace"),
                )
        shown = clip(name) if name else "<unnamed>"
        obj.label = f"{kind} {clip(namespace)}/{shown}" if namespaced else f"{kind} {shown}"
        if not name:
            if name is not None or metadata.get("name") is None:
                obj.fail(
                    "metadata.name",
                    "is required (generateName cannot be resolved offline)"
                    if metadata.get("generateName")
                    else "is required",
                    member_line(metadata, "name") if name is not None else (metadata_line or line),
                )
            return
        name_check = (
            dns1035_label_problems
            if kind == "Service"
            else (dns1123_label_problems if kind == "Namespace" else dns1123_subdomain_problems)
        )
        obj.invalid("metadata.name", name, name_check(name), member_line(metadata, "name"))
        origin = Origin(document.file, line or 0, document.index)
        self._claim(
            obj, kind, namespace if namespaced else "", name, origin, member_line(metadata, "name")
        )
        obj.unknown_fields(metadata, METADATA_FIELDS, "metadata")
        labels = obj.labels(metadata, "labels", "metadata.labels")
        obj.string_map(metadata, "annotations", "metadata.annotations")
        if namespaced:
            self.referenced.setdefault(namespace, obj.label)
        if kind == "Namespace":
            self.namespaces.append(
                Namespace(
                    name=name, labels=labels.with_label(METADATA_NAME_LABEL, name), origin=origin
                )
            )
        elif kind == "Pod":
            found = pod(
                obj,
                raw,
                namespace=namespace,
                name=name,
                labels=labels,
                origin=origin,
                notes=self.notes,
            )
            if found is not None:
                self.pods.append(found)
        elif kind == "NetworkPolicy":
            self.policies.append(
                network_policy(
                    obj, raw, namespace=namespace, name=name, origin=origin, notes=self.notes
                )
            )
        elif kind == "Node":
            self.nodes.append(node(obj, raw, name=name, labels=labels, origin=origin))
        elif kind in TIER_API_VERSIONS:
            self.admin_policies.append(tiered_policy(obj, raw, kind=kind, name=name, origin=origin))
        elif kind == "Service":
            self.services.append(service(obj, raw, namespace=namespace, name=name, origin=origin))
        else:
            for made in workload_pods(
                obj, raw, kind=kind, namespace=namespace, name=name, origin=origin
            ):
                if self._claim(
                    obj, "Pod", namespace, made.name, origin, None, made_by=f"{kind}/{name}"
                ):
                    self.pods.append(made)

    def _claim(
        self,
        obj: ObjectReader,
        kind: str,
        namespace: str,
        name: str,
        origin: Origin,
        line: int | None,
        *,
        made_by: str | None = None,
    ) -> bool:
        key = (kind, namespace, name)
        first = self.seen.get(key)
        where = f"{origin.file}:{origin.line}" if origin.line else origin.file
        if first is None:
            self.seen[key] = where + (f" (made from {made_by})" if made_by else "")
            return True
        full = f"{namespace}/{name}" if namespace else name
        made = f" made from {made_by}" if made_by else ""
        obj.fail("metadata.name", f"duplicate {kind} {full}{made}: first defined at {first}", line)
        return False

    def finish(self) -> Inventory:
        for msg in dns1123_label_problems(self.default_namespace):
            self.problems.append(
                FieldError(
                    f"invalid default namespace {show(self.default_namespace)}: {msg}",
                    path="-n/--namespace",
                )
            )
        if self.problems:
            raise ValidationError(self.problems)
        declared = {ns.name for ns in self.namespaces}
        namespaces = list(self.namespaces)
        notes: list[str] = []
        for ns_name in sorted(set(self.referenced) - declared):
            namespaces.append(
                Namespace(
                    name=ns_name, labels=Labels({METADATA_NAME_LABEL: ns_name}), implicit=True
                )
            )
            notes.append(
                f"namespace {ns_name} was created implicitly (referenced by "
                f"{self.referenced[ns_name]})"
            )
        return Inventory.of(
            namespaces=namespaces,
            pods=self.pods,
            services=self.services,
            policies=self.policies,
            notes=[*notes, *self.notes],
            skipped=self.skipped,
            admin_policies=self.admin_policies,
            nodes=self.nodes,
        )


def build_inventory(
    documents: Iterable[Document],
    *,
    default_namespace: str = "default",
    problems: Sequence[FieldError] = (),
) -> Inventory:
    """Validate and default every document; an ``Inventory`` if all are valid, else a
    ``ValidationError`` listing every problem (plus ``problems`` found while reading)."""
    builder = _Builder(default_namespace)
    builder.problems.extend(problems)
    for document in documents:
        builder.add(document)
    return builder.finish()
