"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch and
server-side apply, plus the `managedFields` field sets.

Strategic merge follows the API's patch strategy for the lists our kinds have: lists of objects
with a merge key (containers, ports, env, volumes, ...) merge item by item; `$patch`,
`$retainKeys`, `$setElementOrder/...` and `$deleteFromPrimitiveList/...` directives (which
`kubectl apply` sends) are honoured. Server-side apply merges the applied configuration the same
way, records the applier's field set, removes fields the applier set before but applies no
longer (unless another manager owns them), and refuses (409) to change a field another manager
owns unless forced, which moves the ownership.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubefence.control.status import ApiError

__all__ = ["apply_json_patch", "fields_v1", "merge_patch", "strategic_merge"]

#: list field name -> merge key, as in the Kubernetes API's patchMergeKey tags.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "podIPs": "ip",
    "tolerations": "key",
    "ownerReferences": "uid",
    "addresses": "type",
    "taints": "key",
}
#: lists of ports merge on port number (containerPort for containers, port for services).
_PORT_KEYS = ("containerPort", "port")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def apply_json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 add/remove/replace/move/copy/test on a copy of doc."""
    if not isinstance(operations, list):
        raise ApiError.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise ApiError.bad_request("json patch operation without 'op'")
        op = operation["op"]
        try:
            parts = _pointer(str(operation.get("path", "")))
            if op == "test":
                if _walk(doc, parts) != operation.get("value"):
                    raise ApiError(422, "Invalid", f"test operation failed at {operation['path']}")
                continue
            if op in ("move", "copy"):
                source = _pointer(str(operation.get("from", "")))
                value = copy.deepcopy(_walk(doc, source))
                if op == "move":
                    doc = _remove(doc, source)
                doc = _add(doc, parts, value, replace=False)
            elif op == "remove":
                doc = _remove(doc, parts)
            elif op in ("add", "replace"):
                if op == "replace":
                    _walk(doc, parts)  # must exist
                doc = _add(
                    doc, parts, copy.deepcopy(operation.get("value")), replace=op == "replace"
                )
            else:
                raise ApiError.bad_request(f"unknown json patch op {op!r}")
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(
                422, "Invalid", f"json patch {op} operation failed at {operation.get('path')!r}"
            ) from None
    return doc


def _add(doc: Any, parts: list[str], value: Any, *, replace: bool) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif replace:
            parent[int(last)] = value
        else:
            index = int(last)
            if index > len(parent):
                raise IndexError(index)
            parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError(last)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise KeyError("")
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return doc


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    if field == "ports":
        for key in _PORT_KEYS:
            if items and all(isinstance(i, dict) and key in i for i in items):
                return key
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to target (a copy is returned)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            current = result.get(field)
            if isinstance(current, list):
                result[field] = [v for v in current if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(field, current + patch)
    if key is None:
        return [copy.deepcopy(v) for v in patch if not _is_directive(v)]
    out = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            continue
        if item.get("$patch") == "replace":
            return [copy.deepcopy(i) for i in patch if not _is_directive(i)]
        index = next(
            (i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
        elif index is None:
            out.append(strategic_merge({}, item))
        else:
            out[index] = strategic_merge(out[index], item)
    return out


def _is_directive(value: Any) -> bool:
    return isinstance(value, dict) and "$patch" in value


def fields_v1(obj: Any, *, field: str = "") -> dict[str, Any]:
    """The FieldsV1 set of an object: `f:<name>` for fields, `k:{...}` for keyed list items."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("apiVersion", "kind", "status") and field == "":
                continue
            if field == "" and key == "metadata" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k in ("labels", "annotations")}
                if not value:
                    continue
            out[f"f:{key}"] = fields_v1(value, field=key)
    elif isinstance(obj, list):
        key = _merge_key(field, obj)
        for item in obj:
            if key is not None and isinstance(item, dict) and key in item:
                name = "k:" + json.dumps({key: item[key]}, separators=(",", ":"))
                out[name] = {".": {}, **fields_v1(item, field="item")}
            elif not isinstance(item, dict | list):
                out["v:" + json.dumps(item, separators=(",", ":"))] = {}
    return out


def union_fields(sets: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of FieldsV1 sets."""
    out: dict[str, Any] = {}
    for fields in sets:
        for name, sub in fields.items():
            out[name] = union_fields([out.get(name, {}), sub]) if isinstance(sub, dict) else sub
    return out


def _item_matches(item: Any, name: str) -> bool:
    if name.startswith("k:"):
        wanted = json.loads(name[2:])
        return isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())
    return name.startswith("v:") and item == json.loads(name[2:])


def _child(obj: Any, name: str) -> Any:
    if name.startswith("f:"):
        return obj.get(name[2:]) if isinstance(obj, dict) else None
    if isinstance(obj, list):
        return next((item for item in obj if _item_matches(item, name)), None)
    return None


def _drop(obj: Any, name: str) -> None:
    if name.startswith("f:") and isinstance(obj, dict):
        obj.pop(name[2:], None)
    elif isinstance(obj, list):
        obj[:] = [item for item in obj if not _item_matches(item, name)]


def prune_unapplied(
    obj: Any, previous: dict[str, Any], applied: dict[str, Any], others: dict[str, Any]
) -> None:
    """Server-side apply's removal rule: a field the applier set last time, that it no longer
    applies and no other manager owns, is removed from obj (in place)."""
    for name, sub in previous.items():
        if name == ".":
            continue
        child = _child(obj, name)
        if name in applied or name in others:
            if isinstance(sub, dict) and sub and child is not None:
                prune_unapplied(child, sub, applied.get(name, {}), others.get(name, {}))
            continue
        _drop(obj, name)


def _leaves(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, sub in fields.items():
        if name == ".":
            continue
        children = {k: v for k, v in sub.items() if k != "."} if isinstance(sub, dict) else {}
        out.extend(_leaves(children, (*prefix, name)) if children else [(*prefix, name)])
    return out


def _has(fields: dict[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = fields
    for name in path:
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def _value(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = _child(obj, name)
        if obj is None:
            return None
    return obj


def dotted(path: tuple[str, ...]) -> str:
    """`.spec.podSelector.matchLabels.app`, as the API server names a managed field."""
    parts = []
    for name in path:
        if name.startswith("f:"):
            parts.append(f".{name[2:]}")
        else:
            parts.append(f"[{name[2:]}]")
    return "".join(parts)


def apply_conflicts(
    applied: dict[str, Any], owned: dict[str, Any], before: Any, after: Any
) -> list[tuple[str, ...]]:
    """Leaf fields the apply sets to a new value although another manager owns them."""
    return [
        path
        for path in _leaves(applied)
        if _has(owned, path) and _value(before, path) != _value(after, path)
    ]


def without_paths(fields: dict[str, Any], paths: list[tuple[str, ...]]) -> dict[str, Any]:
    """A copy of a field set without the given leaves (ownership moved by a forced apply)."""
    out = copy.deepcopy(fields)
    for path in paths:
        node: Any = out
        for name in path[:-1]:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out
