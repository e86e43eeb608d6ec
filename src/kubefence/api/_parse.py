"""Manifest documents to models: API-server defaulting and validation in one pass.

Why this module exists: kubefence must answer questions only about manifests a real cluster would
accept, and must say precisely why it refuses the others. Each object is walked once; every field
is type-checked, validated (``_validate``) and defaulted as the API server would, and every
problem is recorded as a ``FieldError`` with the file, line, object and API-server field path.
Only when the whole input set is clean does an ``Inventory`` exist (nothing is half-loaded).

Defaulting applied here (rule ids as in docs/semantics.md):

- S02: ``policyTypes`` absent or empty -> ``[Ingress]``, plus ``Egress`` when ``spec.egress`` has
  at least one rule (``egress: []`` adds nothing). Explicit values win.
- S16: every namespace carries ``kubernetes.io/metadata.name=<name>`` (set, as the API server
  does, even over a different value in the manifest).
- S18: a missing ``protocol`` is TCP, for policy ports, container ports and service ports.
- Workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
  ReplicationController) become pods ``<workload>-<i>`` from their template, ``replicas``
  (default 1) of them; DaemonSet, Job and CronJob give one. Pods in phase Succeeded or Failed
  are left out (their IPs may already belong to other pods), with a note.
- Objects without a namespace go to the default namespace; a namespace that is referenced but
  not declared is created (``implicit=True``) with a note. Unknown kinds are counted and skipped.

Validation (docs/semantics.md V01-V07, as ``pkg/apis/networking/validation`` does it, with the
deliberate differences listed in ``_validate``): names, label selectors, ports, peers, ipBlocks,
policyTypes; strict fields for the whole NetworkPolicy, for ``metadata`` of every kind and for
pod templates, container ports and service ports; wrong types anywhere; apiVersion per kind;
duplicate objects (also pods generated from workloads). Objects passed in memory have no lines:
their ``Origin.line`` is 0 and their problems carry no line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubefence.api._inventory import Inventory
from kubefence.api._models import (
    METADATA_NAME_LABEL,
    ContainerPort,
    IPAddress,
    IPBlock,
    IPNetwork,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Operator,
    Origin,
    Peer,
    Pod,
    PolicyPort,
    PolicyType,
    Protocol,
    Requirement,
    Rule,
    Service,
    ServicePort,
    rule_path,
)
from kubefence.api._selectors import selector_matches
from kubefence.api._tree import Document, member_line
from kubefence.api._validate import (
    PROTOCOLS,
    cidr_problems,
    dns1035_label_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    ip_problems,
    label_value_problems,
    parse_cidr,
    port_name_problems,
    port_number_problems,
    qualified_name_problems,
)
from kubefence.errors import FieldError, ValidationError

__all__ = ["API_VERSIONS", "MAX_REPLICAS", "WORKLOAD_KINDS", "build_inventory"]

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
}
WORKLOAD_KINDS = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
    }
)
MAX_REPLICAS = 100_000  # each replica becomes a pod in memory; a typo must not exhaust it
_ONE_POD_KINDS = frozenset({"DaemonSet", "Job", "CronJob"})
_SELECTOR_REQUIRED = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_POLICY_TYPES = ("Egress", "Ingress")

# Strict field validation (V07): the fields of networking.k8s.io/v1 NetworkPolicy, per struct.
_POLICY_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_SPEC_FIELDS = frozenset({"podSelector", "ingress", "egress", "policyTypes"})
_INGRESS_RULE_FIELDS = frozenset({"from", "ports"})
_EGRESS_RULE_FIELDS = frozenset({"to", "ports"})
_PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
_IPBLOCK_FIELDS = frozenset({"cidr", "except"})
_PORT_FIELDS = frozenset({"protocol", "port", "endPort"})
_SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
_REQUIREMENT_FIELDS = frozenset({"key", "operator", "values"})
# Strict field validation elsewhere, limited to structs whose typos would silently change an
# answer (a misspelt ``labels`` drops labels, a misspelt ``containerPort`` drops a named port).
_METADATA_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
_TEMPLATE_FIELDS = frozenset({"metadata", "spec"})
_CONTAINER_PORT_FIELDS = frozenset({"name", "hostPort", "containerPort", "protocol", "hostIP"})
_SERVICE_PORT_FIELDS = frozenset(
    {"name", "protocol", "appProtocol", "port", "targetPort", "nodePort"}
)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _clip(text: str) -> str:
    """A name as shown in an object label: invalid names can be arbitrarily long."""
    return text if len(text) <= 253 else text[:250] + "..."


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Object:
    """Problem collection for one object: knows its file, label and fallback line."""

    __slots__ = ("file", "label", "line", "problems")

    def __init__(self, problems: list[FieldError], *, file: str, line: int | None, label: str):
        self.problems = problems
        self.file = file
        self.line = line
        self.label = label

    def invalid(
        self,
        path: str,
        value: object,
        problems: Iterable[str],
        line: int | None = None,
        *,
        what: str = "value",
    ) -> None:
        """One problem per message of a value checker (``dns1123_label_problems`` ...)."""
        for message in problems:
            self.fail(path, f"invalid {what} {_show(value)}: {message}", line)

    def fail(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.append(
            FieldError(
                message,
                path=path,
                file=self.file,
                line=line if line is not None else self.line,
                object=self.label,
            )
        )

    # --- typed access: None for absent/null, a problem (and None) for a wrong type ---------

    def get(
        self,
        parent: Mapping[Any, Any],
        key: str,
        path: str,
        kind: type | tuple[type, ...],
        what: str,
    ) -> Any:
        value = parent.get(key)
        if value is None:
            return None
        if _has_type(value, kind):
            return value
        self.fail(path, f"must be {what}, not {_type_name(value)}", member_line(parent, key))
        return None

    def _wrong(self, parent: Mapping[Any, Any], key: str, path: str, what: str) -> None:
        value = parent[key]
        self.fail(path, f"must be {what}, not {_type_name(value)}", member_line(parent, key))

    def mapping(self, parent: Mapping[Any, Any], key: str, path: str) -> Mapping[Any, Any] | None:
        value = parent.get(key)
        if value is None or isinstance(value, dict | Mapping):
            return value
        self._wrong(parent, key, path, "an object")
        return None

    def sequence(self, parent: Mapping[Any, Any], key: str, path: str) -> Sequence[Any] | None:
        value = parent.get(key)
        if value is None or isinstance(value, list | tuple):
            return value
        self._wrong(parent, key, path, "a list")
        return None

    def string(self, parent: Mapping[Any, Any], key: str, path: str) -> str | None:
        value = parent.get(key)
        if value is None or value.__class__ is str or isinstance(value, str):
            return value
        self._wrong(parent, key, path, "a string")
        return None

    def integer(self, parent: Mapping[Any, Any], key: str, path: str) -> int | None:
        value = parent.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        self._wrong(parent, key, path, "an integer")
        return None

    def boolean(self, parent: Mapping[Any, Any], key: str, path: str) -> bool | None:
        value = parent.get(key)
        if value is None or isinstance(value, bool):
            return value
        self._wrong(parent, key, path, "a boolean (true or false)")
        return None

    def item(self, items: Sequence[Any], index: int, path: str, kind: type, what: str) -> Any:
        value = items[index]
        if _has_type(value, kind):
            return value
        self.fail(path, f"must be {what}, not {_type_name(value)}", member_line(items, index))
        return None

    def unknown_fields(self, value: Mapping[Any, Any], allowed: frozenset[str], path: str) -> None:
        """Strict field validation (V07): name every field the schema does not have."""
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(
                    where,
                    f"unknown field; valid fields here: {', '.join(sorted(allowed))}",
                    member_line(value, key),
                )

    def string_map(self, parent: Mapping[Any, Any], key: str, path: str) -> dict[str, str]:
        """A map of strings (labels, selectors, annotations), type-checked entry by entry."""
        value = self.mapping(parent, key, path)
        if value is None:
            return {}
        result: dict[str, str] = {}
        for k, v in value.items():
            if v.__class__ is str and k.__class__ is str:
                result[k] = v
            elif not isinstance(k, str):
                self.fail(
                    path,
                    f"key {_show(k)} must be a string, not {_type_name(k)}",
                    member_line(value, k),
                )
            elif not isinstance(v, str):
                self.fail(
                    path,
                    f"value of {k!r} must be a string, not {_type_name(v)} (quote it)",
                    member_line(value, k),
                )
            else:
                result[k] = v
        return result

    def labels(self, parent: Mapping[Any, Any], key: str, path: str) -> Labels:
        """A label map, validated as ``ValidateLabels`` does (problems at the map's path)."""
        labels = self.string_map(parent, key, path)
        container = parent.get(key)
        for k, v in labels.items():
            line = member_line(container, k)
            self.invalid(path, k, qualified_name_problems(k), line, what="label key")
            for msg in label_value_problems(v):
                self.fail(path, f"invalid label value {_show(v)} (key {k!r}): {msg}", line)
        return Labels(labels)


def _has_type(value: object, kind: type | tuple[type, ...]) -> bool:
    """``isinstance``, except that a boolean is not an integer unless ``bool`` is asked for."""
    if isinstance(value, bool):
        return bool in (kind if isinstance(kind, tuple) else (kind,))
    return isinstance(value, kind)


def _label_selector(
    obj: _Object, parent: Mapping[Any, Any], key: str, path: str, *, strict: bool = True
) -> LabelSelector | None:
    """``metav1.LabelSelector`` validated as ``ValidateLabelSelector`` (V02); None if absent."""
    raw = obj.mapping(parent, key, path)
    if raw is None:
        return None
    if strict:
        obj.unknown_fields(raw, _SELECTOR_FIELDS, path)
    before = len(obj.problems)
    match_labels = obj.labels(raw, "matchLabels", f"{path}.matchLabels")
    requirements: list[Requirement] = []
    expressions = obj.sequence(raw, "matchExpressions", f"{path}.matchExpressions") or []
    for i in range(len(expressions)):
        req_path = f"{path}.matchExpressions[{i}]"
        req = obj.item(expressions, i, req_path, Mapping, "an object")
        if req is None:
            continue  # the problem is recorded: the selector below is never built
        if strict:
            obj.unknown_fields(req, _REQUIREMENT_FIELDS, req_path)
        req_key = obj.string(req, "key", f"{req_path}.key")
        operator = obj.string(req, "operator", f"{req_path}.operator")
        values_raw = obj.sequence(req, "values", f"{req_path}.values")
        values: list[str] = []
        for j in range(len(values_raw or [])):
            v = obj.item(values_raw or [], j, f"{req_path}.values[{j}]", str, "a string")
            if v is not None:
                values.append(v)
                obj.invalid(
                    f"{req_path}.values[{j}]",
                    v,
                    label_value_problems(v),
                    member_line(values_raw, j),
                )
        line = member_line(expressions, i) if operator not in ("Exists", "DoesNotExist") else None
        if operator in ("In", "NotIn"):
            if not values_raw:
                obj.fail(
                    f"{req_path}.values",
                    "must be specified when `operator` is 'In' or 'NotIn'",
                    line,
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values_raw:
                obj.fail(
                    f"{req_path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    member_line(req, "values"),
                )
        elif operator is None:
            if req.get("operator") is None:
                obj.fail(
                    f"{req_path}.operator", "is required: In, NotIn, Exists or DoesNotExist", line
                )
        else:
            obj.fail(
                f"{req_path}.operator",
                f"not a valid selector operator {_show(operator)}: "
                "use In, NotIn, Exists or DoesNotExist",
                member_line(req, "operator"),
            )
        if req_key is None:
            if req.get("key") is None:
                obj.fail(f"{req_path}.key", "is required (a label key)", line)
        else:
            obj.invalid(
                f"{req_path}.key",
                req_key,
                qualified_name_problems(req_key),
                member_line(req, "key"),
                what="label key",
            )
        if req_key is not None and operator in ("In", "NotIn", "Exists", "DoesNotExist"):
            requirements.append(Requirement(req_key, Operator(operator), tuple(sorted(values))))
    if len(obj.problems) != before:
        return LabelSelector()  # never used: the input set is rejected
    return LabelSelector(match_labels=match_labels, match_expressions=tuple(requirements))


# --- NetworkPolicy -------------------------------------------------------------------------


def _policy_port(obj: _Object, raw: Mapping[Any, Any], path: str) -> PolicyPort:
    """``NetworkPolicyPort``: protocol (default TCP, S18), port number or name, endPort (V03)."""
    obj.unknown_fields(raw, _PORT_FIELDS, path)
    protocol = _protocol(obj, raw, path) or Protocol.TCP
    port: int | str | None = obj.get(
        raw, "port", f"{path}.port", (int, str), "a port number or an IANA service name"
    )
    end_port = obj.integer(raw, "endPort", f"{path}.endPort")
    port_line = member_line(raw, "port")
    end_line = member_line(raw, "endPort")
    if isinstance(port, int):
        obj.invalid(f"{path}.port", port, port_number_problems(port), port_line)
        if end_port is not None:
            if end_port < port:
                obj.fail(
                    f"{path}.endPort",
                    f"invalid value {end_port}: must be greater than or equal to `port` ({port})",
                    end_line,
                )
            obj.invalid(f"{path}.endPort", end_port, port_number_problems(end_port), end_line)
    elif isinstance(port, str):
        if end_port is not None:
            obj.fail(f"{path}.endPort", "may not be specified when `port` is non-numeric", end_line)
        obj.invalid(f"{path}.port", port, port_name_problems(port), port_line)
    elif end_port is not None:
        obj.fail(f"{path}.endPort", "may not be specified when `port` is not specified", end_line)
    return PolicyPort(protocol=protocol, port=port, end_port=end_port)


def _protocol(obj: _Object, raw: Mapping[Any, Any], path: str) -> Protocol | None:
    """The ``protocol`` of a policy, container or service port: TCP when absent (S18); None,
    with a problem, when it is not one of TCP, UDP and SCTP."""
    protocol = obj.string(raw, "protocol", f"{path}.protocol") or "TCP"
    if protocol in PROTOCOLS:
        return Protocol(protocol)
    obj.fail(
        f"{path}.protocol",
        f'unsupported value {_show(protocol)}: supported values: "SCTP", "TCP", "UDP"',
        member_line(raw, "protocol"),
    )
    return None


def _ip_block(obj: _Object, raw: Mapping[Any, Any], path: str, notes: list[str]) -> IPBlock | None:
    """``IPBlock`` (V05): a CIDR and excepts strictly inside it, of the same family."""
    obj.unknown_fields(raw, _IPBLOCK_FIELDS, path)
    cidr_text = obj.string(raw, "cidr", f"{path}.cidr")
    excepts_raw = obj.sequence(raw, "except", f"{path}.except") or []
    if not cidr_text:
        if cidr_text is not None or raw.get("cidr") is None:
            obj.fail(f"{path}.cidr", "is required (e.g. 10.0.0.0/16)", member_line(raw, "cidr"))
        return None
    obj.invalid(f"{path}.cidr", cidr_text, cidr_problems(cidr_text), member_line(raw, "cidr"))
    cidr = parse_cidr(cidr_text)
    if cidr is None:
        return None
    if cidr.network_address != ipaddress.ip_address(cidr_text.partition("/")[0]):
        notes.append(f"{obj.label}: {path}.cidr {cidr_text} has host bits set; read as {cidr}")
    excepts: list[IPNetwork] = []
    for i in range(len(excepts_raw)):
        ex_path = f"{path}.except[{i}]"
        text = obj.item(excepts_raw, i, ex_path, str, "a string")
        if text is None:
            continue
        line = member_line(excepts_raw, i)
        obj.invalid(ex_path, text, cidr_problems(text), line)
        ex = parse_cidr(text)
        if ex is None:
            continue
        if (
            ex.version != cidr.version
            or ex.prefixlen <= cidr.prefixlen
            or not ex.subnet_of(
                cidr  # type: ignore[arg-type]  # same version checked just before
            )
        ):
            obj.fail(
                ex_path,
                f"invalid value {_show(text)}: must be a strict subset of `cidr` ({cidr_text})",
                line,
            )
            continue
        excepts.append(ex)
    return IPBlock(cidr=cidr, except_=tuple(excepts))


def _peer(
    obj: _Object, raw: Mapping[Any, Any], path: str, notes: list[str], line: int | None
) -> Peer:
    """``NetworkPolicyPeer`` (V04): ipBlock, or pod/namespace selectors, never both or none."""
    obj.unknown_fields(raw, _PEER_FIELDS, path)
    pod_selector = _label_selector(obj, raw, "podSelector", f"{path}.podSelector")
    ns_selector = _label_selector(obj, raw, "namespaceSelector", f"{path}.namespaceSelector")
    has_block = raw.get("ipBlock") is not None
    ip_raw = obj.mapping(raw, "ipBlock", f"{path}.ipBlock")
    ip_block = _ip_block(obj, ip_raw, f"{path}.ipBlock", notes) if ip_raw is not None else None
    count = sum(raw.get(k) is not None for k in ("podSelector", "namespaceSelector", "ipBlock"))
    if count == 0:
        obj.fail(
            path, "must specify a peer: podSelector, namespaceSelector (or both), or ipBlock", line
        )
    elif count > 1 and has_block:
        obj.fail(
            path,
            "may not specify both ipBlock and another peer (podSelector or namespaceSelector)",
            line,
        )
    return Peer(pod_selector=pod_selector, namespace_selector=ns_selector, ip_block=ip_block)


def _rules(
    obj: _Object,
    spec: Mapping[Any, Any],
    direction: str,
    *,
    lines: dict[str, int],
    notes: list[str],
) -> tuple[Rule, ...]:
    """Ingress or egress rules; a rule that is not an object is a problem and is left out."""
    peer_key = "from" if direction == "ingress" else "to"
    allowed = _INGRESS_RULE_FIELDS if direction == "ingress" else _EGRESS_RULE_FIELDS
    raw_rules = obj.sequence(spec, direction, f"spec.{direction}")
    if raw_rules is None:
        return ()
    rules: list[Rule] = []
    for i in range(len(raw_rules)):
        at = rule_path(direction, i)
        raw = obj.item(raw_rules, i, at, Mapping, "an object (a rule)")
        _record(lines, at, member_line(raw_rules, i))
        if raw is None:
            continue
        obj.unknown_fields(raw, allowed, at)
        peers: list[Peer] = []
        raw_peers = obj.sequence(raw, peer_key, f"{at}.{peer_key}") or []
        for j in range(len(raw_peers)):
            peer_path = f"{at}.{peer_key}[{j}]"
            peer_raw = obj.item(raw_peers, j, peer_path, Mapping, "an object (a peer)")
            _record(lines, peer_path, member_line(raw_peers, j))
            if peer_raw is not None:
                peers.append(_peer(obj, peer_raw, peer_path, notes, member_line(raw_peers, j)))
        ports: list[PolicyPort] = []
        raw_ports = obj.sequence(raw, "ports", f"{at}.ports") or []
        for k in range(len(raw_ports)):
            port_path = f"{at}.ports[{k}]"
            port_raw = obj.item(raw_ports, k, port_path, Mapping, "an object (a port)")
            _record(lines, port_path, member_line(raw_ports, k))
            if port_raw is not None:
                ports.append(_policy_port(obj, port_raw, port_path))
        rules.append(Rule(peers=tuple(peers), ports=tuple(ports)))
    return tuple(rules)


def _record(lines: dict[str, int], path: str, line: int | None) -> None:
    if line is not None:
        lines[path] = line


def _policy_types(
    obj: _Object, spec: Mapping[Any, Any], egress: tuple[Rule, ...]
) -> tuple[PolicyType, ...]:
    """``policyTypes`` (V06), defaulted per S02 when absent or empty."""
    raw = obj.sequence(spec, "policyTypes", "spec.policyTypes")
    if not raw:
        # S02: [Ingress], plus Egress iff spec.egress has at least one rule.
        if egress:
            return (PolicyType.INGRESS, PolicyType.EGRESS)
        return (PolicyType.INGRESS,)
    if len(raw) > 2:
        obj.fail(
            "spec.policyTypes",
            "may not specify more than two policyTypes",
            member_line(spec, "policyTypes"),
        )
        return (PolicyType.INGRESS,)
    result: list[PolicyType] = []
    for i in range(len(raw)):
        path = f"spec.policyTypes[{i}]"
        value = obj.item(raw, i, path, str, "a string")
        if value is None:
            continue
        if value not in _POLICY_TYPES:
            obj.fail(
                path,
                f'unsupported value {_show(value)}: supported values: "Egress", "Ingress"',
                member_line(raw, i),
            )
            continue
        policy_type = PolicyType(value)
        if policy_type in result:
            obj.fail(
                path,
                f"duplicate value {value!r}: each policy type may appear once",
                member_line(raw, i),
            )
            continue
        result.append(policy_type)
    return tuple(result) or (PolicyType.INGRESS,)


def _network_policy(
    obj: _Object,
    raw: Mapping[Any, Any],
    *,
    namespace: str,
    name: str,
    origin: Origin,
    notes: list[str],
) -> NetworkPolicy:
    obj.unknown_fields(raw, _POLICY_FIELDS, "")
    spec = obj.mapping(raw, "spec", "spec") or {}
    obj.unknown_fields(spec, _SPEC_FIELDS, "spec")
    lines: dict[str, int] = {}
    _record(lines, "spec.podSelector", member_line(spec, "podSelector"))
    pod_selector = _label_selector(obj, spec, "podSelector", "spec.podSelector")
    ingress = _rules(obj, spec, "ingress", lines=lines, notes=notes)
    egress = _rules(obj, spec, "egress", lines=lines, notes=notes)
    # A written rule missing from ``egress`` is a problem: the policy is never used then.
    policy_types = _policy_types(obj, spec, egress)
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector or LabelSelector(),
        policy_types=policy_types,
        ingress=ingress,
        egress=egress,
        origin=origin,
        lines=lines,
    )


# --- Pods and workloads ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PodSpec:
    """What a pod takes from its ``PodSpec`` (or a workload's template)."""

    ports: tuple[ContainerPort, ...] = ()
    host_network: bool = False
    node: str | None = None
    images: tuple[str, ...] = ()


def _pod_spec(obj: _Object, parent: Mapping[Any, Any], key: str, path: str) -> _PodSpec:
    """``PodSpec``: containers (names, images, ports), hostNetwork, nodeName."""
    spec = obj.mapping(parent, key, path)
    if spec is None:
        if parent.get(key) is None:
            obj.fail(path, "is required (with at least one container)", member_line(parent, key))
        return _PodSpec()
    containers = obj.sequence(spec, "containers", f"{path}.containers")
    if not containers:
        if spec.get("containers") is None or containers is not None:
            obj.fail(
                f"{path}.containers",
                "is required: at least one container",
                member_line(spec, "containers"),
            )
        containers = []
    ports: list[ContainerPort] = []
    images: list[str] = []
    names: set[str] = set()
    for i in range(len(containers)):
        c_path = f"{path}.containers[{i}]"
        container = obj.item(containers, i, c_path, Mapping, "an object (a container)")
        if container is None:
            continue
        line = member_line(containers, i)
        name = obj.string(container, "name", f"{c_path}.name")
        if name is None:
            if container.get("name") is None:
                obj.fail(f"{c_path}.name", "is required", line)
        else:
            obj.invalid(
                f"{c_path}.name", name, dns1123_label_problems(name), member_line(container, "name")
            )
            if name in names:
                obj.fail(
                    f"{c_path}.name", f"duplicate value {name!r}", member_line(container, "name")
                )
            names.add(name)
        image = obj.string(container, "image", f"{c_path}.image")
        if not image:
            if image is not None or container.get("image") is None:
                obj.fail(f"{c_path}.image", "is required", line)
        else:
            images.append(image)
        ports.extend(_container_ports(obj, container, f"{c_path}.ports"))
    for kind in ("initContainers", "ephemeralContainers"):
        extra = obj.sequence(spec, kind, f"{path}.{kind}") or []
        for i in range(len(extra)):
            obj.item(extra, i, f"{path}.{kind}[{i}]", Mapping, "an object (a container)")
    host_network = bool(obj.boolean(spec, "hostNetwork", f"{path}.hostNetwork"))
    node = obj.string(spec, "nodeName", f"{path}.nodeName")
    if node:
        obj.invalid(
            f"{path}.nodeName",
            node,
            dns1123_subdomain_problems(node),
            member_line(spec, "nodeName"),
        )
    return _PodSpec(
        ports=tuple(ports), host_network=host_network, node=node or None, images=tuple(images)
    )


def _container_ports(obj: _Object, container: Mapping[Any, Any], path: str) -> list[ContainerPort]:
    """``ContainerPort`` list of one container, as ``validateContainerPorts`` checks it."""
    raw = obj.sequence(container, "ports", path) or []
    result: list[ContainerPort] = []
    names: set[str] = set()
    for i in range(len(raw)):
        p_path = f"{path}[{i}]"
        entry = obj.item(raw, i, p_path, Mapping, "an object (a port)")
        if entry is None:
            continue
        obj.unknown_fields(entry, _CONTAINER_PORT_FIELDS, p_path)
        line = member_line(raw, i)
        name = obj.string(entry, "name", f"{p_path}.name")
        if name:
            problems = port_name_problems(name)
            obj.invalid(f"{p_path}.name", name, problems, member_line(entry, "name"))
            if not problems and name in names:
                obj.fail(f"{p_path}.name", f"duplicate value {name!r}", member_line(entry, "name"))
            names.add(name)
        number = obj.integer(entry, "containerPort", f"{p_path}.containerPort")
        if number is None or number == 0:
            if number == 0 or entry.get("containerPort") is None:
                obj.fail(f"{p_path}.containerPort", "is required (1-65535)", line)
        else:
            obj.invalid(
                f"{p_path}.containerPort",
                number,
                port_number_problems(number),
                member_line(entry, "containerPort"),
            )
        host_port = obj.integer(entry, "hostPort", f"{p_path}.hostPort")
        if host_port:
            obj.invalid(
                f"{p_path}.hostPort",
                host_port,
                port_number_problems(host_port),
                member_line(entry, "hostPort"),
            )
        protocol = _protocol(obj, entry, p_path)
        if protocol is None:
            continue
        if number is not None and 1 <= number <= 65535:
            result.append(ContainerPort(port=number, protocol=protocol, name=name or None))
    return result


def _pod_ips(obj: _Object, raw: Mapping[Any, Any]) -> tuple[IPAddress, ...]:
    """``status.podIPs`` (or ``status.podIP``), IPv4 and IPv6, in order, without repeats."""
    status = obj.mapping(raw, "status", "status")
    if status is None:
        return ()
    texts: list[tuple[str, str, int | None]] = []
    pod_ips = obj.sequence(status, "podIPs", "status.podIPs") or []
    for i in range(len(pod_ips)):
        entry = obj.item(pod_ips, i, f"status.podIPs[{i}]", Mapping, "an object ({ip: ...})")
        if entry is None:
            continue
        ip = obj.string(entry, "ip", f"status.podIPs[{i}].ip")
        if ip is not None:
            texts.append((ip, f"status.podIPs[{i}].ip", member_line(entry, "ip")))
    pod_ip = obj.string(status, "podIP", "status.podIP")
    if pod_ip:
        texts.insert(0, (pod_ip, "status.podIP", member_line(status, "podIP")))
    return _addresses(obj, texts)


def _replicas(obj: _Object, spec: Mapping[Any, Any], kind: str) -> int:
    if kind in _ONE_POD_KINDS:
        return 1
    replicas = obj.integer(spec, "replicas", "spec.replicas")
    if replicas is None:
        return 1
    if replicas < 0:
        obj.fail(
            "spec.replicas",
            f"invalid value {replicas}: must be greater than or equal to 0",
            member_line(spec, "replicas"),
        )
        return 0
    if replicas > MAX_REPLICAS:
        obj.fail(
            "spec.replicas",
            f"invalid value {replicas}: kubefence expands at most {MAX_REPLICAS} pods per workload",
            member_line(spec, "replicas"),
        )
        return 0
    return replicas


def _workload_pods(
    obj: _Object, raw: Mapping[Any, Any], *, kind: str, namespace: str, name: str, origin: Origin
) -> list[Pod]:
    """Pods ``<name>-<i>`` from a workload's template (``spec.jobTemplate.spec.template`` for a
    CronJob), after checking that the selector matches the template's labels."""
    spec = obj.mapping(raw, "spec", "spec")
    if spec is None:
        obj.fail("spec", "is required (with a pod template)", member_line(raw, "spec"))
        return []
    replicas = _replicas(obj, spec, kind)
    holder, prefix = spec, "spec"
    if kind == "CronJob":
        schedule = obj.string(spec, "schedule", "spec.schedule")
        if not schedule:
            obj.fail(
                "spec.schedule", "is required (a cron expression)", member_line(spec, "schedule")
            )
        job = obj.mapping(spec, "jobTemplate", "spec.jobTemplate")
        job_spec = obj.mapping(job, "spec", "spec.jobTemplate.spec") if job is not None else None
        if job_spec is None:
            obj.fail(
                "spec.jobTemplate.spec",
                "is required (with a pod template)",
                member_line(spec, "jobTemplate"),
            )
            return []
        holder, prefix = job_spec, "spec.jobTemplate.spec"
    template = obj.mapping(holder, "template", f"{prefix}.template")
    if template is None:
        obj.fail(
            f"{prefix}.template", "is required (the pod template)", member_line(holder, "template")
        )
        return []
    t_path = f"{prefix}.template"
    obj.unknown_fields(template, _TEMPLATE_FIELDS, t_path)
    metadata = obj.mapping(template, "metadata", f"{t_path}.metadata") or {}
    obj.unknown_fields(metadata, _METADATA_FIELDS, f"{t_path}.metadata")
    labels = obj.labels(metadata, "labels", f"{t_path}.metadata.labels")
    pod_spec = _pod_spec(obj, template, "spec", f"{t_path}.spec")
    _check_workload_selector(obj, spec, kind=kind, labels=labels, t_path=t_path, metadata=metadata)
    owner = f"{kind}/{name}"
    return [
        Pod(
            namespace=namespace,
            name=f"{name}-{i}",
            labels=labels,
            ports=pod_spec.ports,
            host_network=pod_spec.host_network,
            node=pod_spec.node,
            images=pod_spec.images,
            owner=owner,
            origin=origin,
        )
        for i in range(replicas)
    ]


def _check_workload_selector(
    obj: _Object,
    spec: Mapping[Any, Any],
    *,
    kind: str,
    labels: Labels,
    t_path: str,
    metadata: Mapping[Any, Any],
) -> None:
    labels_line = member_line(metadata, "labels")
    if kind == "ReplicationController":
        selector_map = obj.labels(spec, "selector", "spec.selector")
        if selector_map and not selector_matches(LabelSelector(match_labels=selector_map), labels):
            obj.fail(
                f"{t_path}.metadata.labels",
                "`selector` does not match template `labels`",
                labels_line,
            )
        return
    if kind not in _SELECTOR_REQUIRED:
        return
    if spec.get("selector") is None:
        obj.fail(
            "spec.selector",
            "is required (a label selector matching the template labels)",
            member_line(spec, "selector"),
        )
        return
    before = len(obj.problems)
    selector = _label_selector(obj, spec, "selector", "spec.selector", strict=False)
    if selector is None or len(obj.problems) != before:
        return
    if selector.is_empty:
        obj.fail(
            "spec.selector",
            f"empty selector is invalid for {kind.lower()}",
            member_line(spec, "selector"),
        )
    elif not selector_matches(selector, labels):
        obj.fail(
            f"{t_path}.metadata.labels", "`selector` does not match template `labels`", labels_line
        )


# --- Services ---------------------------------------------------------------------------------


def _service(
    obj: _Object, raw: Mapping[Any, Any], *, namespace: str, name: str, origin: Origin
) -> Service:
    """``Service``: selector, ports (targetPort defaults to port), cluster IPs, type."""
    spec = obj.mapping(raw, "spec", "spec") or {}
    selector = (
        obj.labels(spec, "selector", "spec.selector") if spec.get("selector") is not None else None
    )
    raw_ports = obj.sequence(spec, "ports", "spec.ports") or []
    ports: list[ServicePort] = []
    names: set[str] = set()
    for i in range(len(raw_ports)):
        p_path = f"spec.ports[{i}]"
        entry = obj.item(raw_ports, i, p_path, Mapping, "an object (a port)")
        if entry is None:
            continue
        obj.unknown_fields(entry, _SERVICE_PORT_FIELDS, p_path)
        line = member_line(raw_ports, i)
        port_name = obj.string(entry, "name", f"{p_path}.name")
        if port_name:
            obj.invalid(
                f"{p_path}.name",
                port_name,
                dns1123_label_problems(port_name),
                member_line(entry, "name"),
            )
            if port_name in names:
                obj.fail(
                    f"{p_path}.name", f"duplicate value {port_name!r}", member_line(entry, "name")
                )
            names.add(port_name)
        elif len(raw_ports) > 1:
            obj.fail(f"{p_path}.name", "is required when a service has more than one port", line)
        number = obj.integer(entry, "port", f"{p_path}.port")
        if number is None:
            if entry.get("port") is None:
                obj.fail(f"{p_path}.port", "is required (1-65535)", line)
            continue
        bad = port_number_problems(number)
        obj.invalid(f"{p_path}.port", number, bad, member_line(entry, "port"))
        target: int | str | None = obj.get(
            entry, "targetPort", f"{p_path}.targetPort", (int, str), "a port number or a port name"
        )
        t_line = member_line(entry, "targetPort")
        if isinstance(target, int):
            obj.invalid(f"{p_path}.targetPort", target, port_number_problems(target), t_line)
        elif isinstance(target, str):
            obj.invalid(f"{p_path}.targetPort", target, port_name_problems(target), t_line)
        protocol = _protocol(obj, entry, p_path) or Protocol.TCP
        if not bad:
            ports.append(
                ServicePort(
                    port=number,
                    target_port=target if target is not None else number,
                    protocol=protocol,
                    name=port_name or None,
                )
            )
    service_type = obj.string(spec, "type", "spec.type") or "ClusterIP"
    if service_type not in _SERVICE_TYPES:
        obj.fail(
            "spec.type",
            f"unsupported value {_show(service_type)}: supported values: "
            + ", ".join(f'"{t}"' for t in _SERVICE_TYPES),
            member_line(spec, "type"),
        )
    return Service(
        namespace=namespace,
        name=name,
        selector=selector,
        ports=tuple(ports),
        cluster_ips=_cluster_ips(obj, spec),
        type=service_type,
        origin=origin,
    )


def _cluster_ips(obj: _Object, spec: Mapping[Any, Any]) -> tuple[IPAddress, ...]:
    texts: list[tuple[str, str, int | None]] = []
    single = obj.string(spec, "clusterIP", "spec.clusterIP")
    if single:
        texts.append((single, "spec.clusterIP", member_line(spec, "clusterIP")))
    many = obj.sequence(spec, "clusterIPs", "spec.clusterIPs") or []
    for i in range(len(many)):
        text = obj.item(many, i, f"spec.clusterIPs[{i}]", str, "a string")
        if text:
            texts.append((text, f"spec.clusterIPs[{i}]", member_line(many, i)))
    headless = [entry for entry in texts if entry[0] != "None"]
    return _addresses(obj, headless, alternative=" or None")


def _addresses(
    obj: _Object, texts: Iterable[tuple[str, str, int | None]], *, alternative: str = ""
) -> tuple[IPAddress, ...]:
    """The addresses of ``(text, path, line)`` entries in order, without repeats; a problem for
    each text that is not an IP address (``alternative`` names another accepted value)."""
    result: list[IPAddress] = []
    for text, path, line in texts:
        problems = ip_problems(text)
        obj.invalid(path, text, [m + alternative for m in problems], line)
        if not problems:
            address = ipaddress.ip_address(text)
            if address not in result:
                result.append(address)
    return tuple(result)


# --- Documents to an inventory -----------------------------------------------------------------


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
                    f"{_type_name(content)}",
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
        obj = _Object(self.problems, file=document.file, line=line, label=label)
        kind = obj.string(raw, "kind", "kind")
        api_version = obj.string(raw, "apiVersion", "apiVersion")
        if kind is None or api_version is None:
            for field, example in (("apiVersion", "v1"), ("kind", "Pod")):
                if raw.get(field) is None:
                    obj.fail(field, f"is required (e.g. {field}: {example})", line)
            return
        if kind == "List" or (kind.endswith("List") and "items" in raw):
            items = obj.sequence(raw, "items", "items") or []
            for i in range(len(items)):
                item = obj.item(items, i, f"items[{i}]", Mapping, "an object")
                if item is not None:
                    self._add_object(
                        item,
                        document,
                        label=f"{label}, items[{i}]",
                        line=member_line(items, i) or line,
                    )
            return
        expected = API_VERSIONS.get(kind)
        if expected is None:
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

    def _add_known(
        self,
        obj: _Object,
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
        namespaced = kind != "Namespace"
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
        shown = _clip(name) if name else "<unnamed>"
        obj.label = f"{kind} {_clip(namespace)}/{shown}" if namespaced else f"{kind} {shown}"
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
        obj.unknown_fields(metadata, _METADATA_FIELDS, "metadata")
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
            self._pod(obj, raw, namespace=namespace, name=name, labels=labels, origin=origin)
        elif kind == "NetworkPolicy":
            self.policies.append(
                _network_policy(
                    obj, raw, namespace=namespace, name=name, origin=origin, notes=self.notes
                )
            )
        elif kind == "Service":
            self.services.append(_service(obj, raw, namespace=namespace, name=name, origin=origin))
        else:
            for pod in _workload_pods(
                obj, raw, kind=kind, namespace=namespace, name=name, origin=origin
            ):
                if self._claim(
                    obj, "Pod", namespace, pod.name, origin, None, made_by=f"{kind}/{name}"
                ):
                    self.pods.append(pod)

    def _claim(
        self,
        obj: _Object,
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

    def _pod(
        self,
        obj: _Object,
        raw: Mapping[Any, Any],
        *,
        namespace: str,
        name: str,
        labels: Labels,
        origin: Origin,
    ) -> None:
        spec = _pod_spec(obj, raw, "spec", "spec")
        ips = _pod_ips(obj, raw)
        status = raw.get("status")
        phase = obj.string(status, "phase", "status.phase") if isinstance(status, Mapping) else None
        if phase in _FINISHED_PHASES:
            self.notes.append(f"pod {namespace}/{name} left out: phase {phase}")
            return
        self.pods.append(
            Pod(
                namespace=namespace,
                name=name,
                labels=labels,
                ports=spec.ports,
                ips=ips,
                host_network=spec.host_network,
                phase=phase,
                node=spec.node,
                images=spec.images,
                origin=origin,
            )
        )

    def finish(self) -> Inventory:
        for msg in dns1123_label_problems(self.default_namespace):
            self.problems.append(
                FieldError(
                    f"invalid default namespace {_show(self.default_namespace)}: {msg}",
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
