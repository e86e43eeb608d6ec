"""Patch semantics: JSON patch, merge patch, strategic merge with kubectl's directives, and the
server-side apply field sets."""

from __future__ import annotations

import pytest

from kubefence.control.patch import (
    apply_conflicts,
    apply_json_patch,
    dotted,
    fields_v1,
    merge_patch,
    prune_unapplied,
    strategic_merge,
    without_paths,
)
from kubefence.control.status import ApiError


def test_merge_patch_merges_maps_and_null_deletes() -> None:
    doc = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(doc, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3},
        "l": [3],
    }
    assert doc == {"a": {"b": 1, "c": 2}, "l": [1, 2]}  # untouched


def test_json_patch_operations_and_failures() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = apply_json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "move", "from": "/b", "path": "/m"},
            {"op": "test", "path": "/m/c", "value": 2},
        ],
    )
    assert out == {"a": [1, 2, 3], "m": {"c": 2}}
    with pytest.raises(ApiError) as failed:
        apply_json_patch(doc, [{"op": "remove", "path": "/zzz"}])
    assert failed.value.code == 422


def test_strategic_merge_keys_and_directives() -> None:
    pod = {
        "spec": {
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
            "volumes": [{"name": "v"}],
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}],
            "volumes": [{"$patch": "replace"}, {"name": "w"}],
        }
    }
    out = strategic_merge(pod, patch)
    assert out["spec"]["containers"] == [{"name": "b", "image": "z"}]
    assert out["spec"]["volumes"] == [{"name": "w"}]
    ports = {"ports": [{"port": 80, "protocol": "TCP"}]}
    merged = strategic_merge({"spec": ports}, {"spec": {"ports": [{"port": 443}]}})
    assert merged["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 443}]


def test_fields_v1_and_apply_pruning() -> None:
    first = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1, "y": 2}}
    second = {"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}}
    owned = fields_v1(first)
    assert owned == {
        "f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}},
        "f:spec": {"f:x": {}, "f:y": {}},
    }
    live = {"metadata": {"name": "n", "labels": {"a": "1", "b": "2"}}, "spec": {"x": 1, "y": 2}}
    others = {"f:spec": {"f:y": {}}}  # another manager owns spec.y
    prune_unapplied(live, owned, fields_v1(second), others)
    assert live == {"metadata": {"name": "n", "labels": {"a": "1"}}, "spec": {"x": 1, "y": 2}}


def test_apply_conflicts_only_on_changed_values_owned_by_others() -> None:
    before = {"spec": {"x": 1, "y": 2}}
    after = {"spec": {"x": 5, "y": 2}}
    applied = fields_v1({"spec": {"x": 5, "y": 2}})
    owned = {"f:spec": {"f:x": {}, "f:y": {}}}
    found = apply_conflicts(applied, owned, before, after)
    assert [dotted(path) for path in found] == [".spec.x"]
    assert without_paths(owned, found) == {"f:spec": {"f:y": {}}}
