"""A page of the pod list decoded into only the fields the agent reads, four times faster.

Why this module exists: at 10,000 pods the first list of a node's agent is about 18 MB of JSON
(real pods are larger still), and decoding all of it into dicts was most of the lists' CPU;
about half of every pod is ``managedFields``, most of the rest fields no part of the agent
reads. ``decode_pod_page`` decodes a page with msgspec against the shape below: the fields
``pod_record`` and the full parse read (``metadata``, the containers' names, images and ports,
``nodeName``, ``hostNetwork``, the kinds of init and ephemeral containers, the phase and
addresses) are kept exactly as a plain decode gives them (their values are decoded untyped, so
the checks downstream see the same values), every other field is skipped without being built.
The checks that read which fields exist (an unknown field of ``metadata`` or of a container
port) are kept too: those structs refuse unknown fields, and anything the shape does not allow
makes the whole page decode the plain way. So the pods the store parses are the same, and the
only difference is what the agent never reads (``managedFields``, which the store drops
anyway, and the skipped fields).
"""

# ruff: noqa: N815  (the fields are named as the API names them)
from __future__ import annotations

import json
from typing import Any, cast

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

__all__ = ["decode_pod_page"]

Obj = dict[str, Any]


class _Slim(Struct, omit_defaults=True):
    """Unset fields are left out of the dicts, as they were absent from the JSON."""


class _Opaque(_Slim):
    """An object whose fields nobody reads (an init container): only that it is an object."""


class _Port(_Slim, forbid_unknown_fields=True):
    name: Any = UNSET
    hostPort: Any = UNSET
    containerPort: Any = UNSET
    protocol: Any = UNSET
    hostIP: Any = UNSET


class _Container(_Slim):
    name: Any = UNSET
    image: Any = UNSET
    ports: list[_Port] | UnsetType | None = UNSET


class _Metadata(_Slim, forbid_unknown_fields=True):
    # kubefence.api's METADATA_FIELDS (test_slim checks the two agree).
    name: Any = UNSET
    generateName: Any = UNSET
    namespace: Any = UNSET
    selfLink: Any = UNSET
    uid: Any = UNSET
    resourceVersion: Any = UNSET
    generation: Any = UNSET
    creationTimestamp: Any = UNSET
    deletionTimestamp: Any = UNSET
    deletionGracePeriodSeconds: Any = UNSET
    labels: Any = UNSET
    annotations: Any = UNSET
    ownerReferences: Any = UNSET
    finalizers: Any = UNSET
    managedFields: Raw | UnsetType = UNSET  # kept raw, then dropped (``_manifest`` does)


class _Spec(_Slim):
    containers: list[_Container] | UnsetType | None = UNSET
    initContainers: list[_Opaque] | UnsetType | None = UNSET
    ephemeralContainers: list[_Opaque] | UnsetType | None = UNSET
    nodeName: Any = UNSET
    hostNetwork: Any = UNSET


class _Status(_Slim):
    phase: Any = UNSET
    podIP: Any = UNSET
    podIPs: Any = UNSET


class _Pod(_Slim):
    metadata: _Metadata | UnsetType | None = UNSET
    spec: _Spec | UnsetType | None = UNSET
    status: _Status | UnsetType | None = UNSET


class _PodList(_Slim):
    metadata: Any = UNSET
    items: list[_Pod] | UnsetType | None = UNSET


_DECODER = msgspec.json.Decoder(_PodList)


def decode_pod_page(data: bytes) -> Obj:
    """One page of a pod list (``{"metadata": ..., "items": [...]}``) with each pod reduced
    to the fields the agent reads; a page of any other shape decoded whole."""
    try:
        page = _DECODER.decode(data)
    except msgspec.DecodeError:  # also ValidationError: a shape this reader does not expect
        return cast(Obj, json.loads(data))
    for pod in page.items or ():
        if isinstance(pod.metadata, _Metadata):
            pod.metadata.managedFields = UNSET
    return cast(Obj, msgspec.to_builtins(page))
