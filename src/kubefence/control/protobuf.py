"""Decoding `application/vnd.kubernetes.protobuf` request bodies into JSON-shaped objects.

Why: kubectl's typed clients (`create namespace`, `create role`, `auth can-i`, `auth whoami`,
...) send protobuf, and accept a JSON answer. The body is the magic `k8s\\0` followed by a
`runtime.Unknown` envelope (typeMeta, raw); `raw` is the kind's message, decoded with the field
table in `data/proto_fields.json` (made by `protobuf_gen`). Special types map to their JSON
forms: Time -> RFC 3339, IntOrString -> int or string, Quantity -> string, RawExtension and
FieldsV1 -> embedded JSON, ExtraValue -> list. Responses stay JSON (clients accept it).
Go clients encode every non-pointer field, so an empty string is dropped (in Go it means unset;
kept, it would defeat defaulting: a `kubectl create deployment` pod template would carry
``restartPolicy: ""``, ``dnsPolicy: ""``, ``imagePullPolicy: ""`` into every pod).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from functools import cache
from importlib import resources
from typing import Any

from kubefence.control.status import ApiError

__all__ = ["MAGIC", "decode_body"]

MAGIC = b"k8s\x00"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_GROUP_PACKAGES = {
    "": "k8s.io.api.core.v1",
    "rbac.authorization.k8s.io": "k8s.io.api.rbac.v1",
    "authorization.k8s.io": "k8s.io.api.authorization.v1",
    "authentication.k8s.io": "k8s.io.api.authentication.v1",
    "apps": "k8s.io.api.apps.v1",
    "networking.k8s.io": "k8s.io.api.networking.v1",
    "coordination.k8s.io": "k8s.io.api.coordination.v1",
    "discovery.k8s.io": "k8s.io.api.discovery.v1",
}
_UNKNOWN = {
    1: ("typeMeta", "TypeMeta"),
    2: ("raw", "bytes"),
}


@cache
def _table() -> dict[str, dict[str, list[Any]]]:
    text = resources.files("kubefence.control").joinpath("data/proto_fields.json").read_text()
    table: dict[str, dict[str, list[Any]]] = json.loads(text)
    return table


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) in order."""
    out = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
            if len(value) != length:
                raise ValueError("truncated field")
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int = 64) -> int:
    """Two's complement of a varint (negative ints are encoded as 10-byte varints)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "string":
        return bytes(value).decode()
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "int64", "uint32", "uint64"):
        return _signed(int(value), 64)
    if kind == "double":
        return struct.unpack("<d", value)[0]
    if kind == "float":
        return struct.unpack("<f", value)[0]
    return _message(kind, bytes(value))


def _repeated_scalars(kind: str, wire: int, value: Any) -> list[Any]:
    """A packed repeated numeric field holds several values in one length-delimited field."""
    if wire == 2 and kind in ("int32", "int64", "uint32", "uint64", "bool"):
        out, pos, data = [], 0, bytes(value)
        while pos < len(data):
            number, pos = _varint(data, pos)
            out.append(_scalar(kind, 0, number))
        return out
    return [_scalar(kind, wire, value)]


def _special(name: str, data: bytes) -> tuple[bool, Any]:
    short = name.rsplit(".", 1)[-1]
    fields = {n: v for n, _, v in _fields(data)}
    if name in (f"{_META}.Time", f"{_META}.MicroTime"):
        seconds = _signed(int(fields.get(1, 0)), 64)
        if seconds <= 0:
            return True, None  # Go's zero time
        stamp = dt.datetime.fromtimestamp(seconds, dt.UTC)
        return True, stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if short == "IntOrString":
        if int(fields.get(1, 0)) == 1:
            return True, bytes(fields.get(3, b"")).decode()
        return True, _signed(int(fields.get(2, 0)), 64)
    if short == "Quantity":
        return True, bytes(fields.get(1, b"")).decode()
    if short in ("RawExtension", "FieldsV1"):
        raw = bytes(fields.get(1, b""))
        return True, json.loads(raw) if raw else {}
    if short == "ExtraValue":
        return True, [bytes(v).decode() for n, _, v in _fields(data) if n == 1]
    if short == "Duration":
        return True, f"{_signed(int(fields.get(1, 0)), 64) / 1e9:g}s"
    return False, None


def _message(name: str, data: bytes) -> Any:
    special, value = _special(name, data)
    if special:
        return value
    schema = _table().get(name)
    if schema is None:
        raise ValueError(f"unknown message {name}")
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        spec = schema.get(str(number))
        if spec is None:
            continue  # an unknown field: skipped, as proto decoding does
        json_name, kind = spec[0], spec[1]
        if kind == "map":
            entry = {n: v for n, _, v in _fields(bytes(raw))}
            key = _scalar(spec[2], 2, entry.get(1, b""))
            item = entry.get(2, b"" if spec[3] in ("string", "bytes") else 0)
            out.setdefault(json_name, {})[key] = _scalar(spec[3], 2, item)
        elif spec[2]:
            out.setdefault(json_name, []).extend(_repeated_scalars(kind, wire, raw))
        else:
            value = _scalar(kind, wire, raw)
            if kind == "string" and value == "":
                continue  # Go's zero string is "unset": leave it to defaulting (restartPolicy...)
            out[json_name] = value
    return out


def decode_body(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object it encodes (apiVersion and kind included)."""
    if not body.startswith(MAGIC):
        raise ApiError.bad_request("protobuf body without the k8s magic prefix")
    try:
        envelope = {n: v for n, _, v in _fields(body[len(MAGIC) :])}
        type_meta = {n: bytes(v).decode() for n, _, v in _fields(bytes(envelope.get(1, b"")))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        package = _GROUP_PACKAGES.get(group)
        if package is None or not kind:
            raise ApiError(415, "UnsupportedMediaType", f"no protobuf schema for {api_version}")
        obj = _message(f"{package}.{kind}", bytes(envelope.get(2, b"")))
    except (ValueError, UnicodeDecodeError, struct.error) as error:
        raise ApiError.bad_request(f"error decoding protobuf: {error}") from None
    if not isinstance(obj, dict):
        raise ApiError.bad_request("protobuf body is not an object")
    return {"apiVersion": api_version, "kind": kind, **obj}
