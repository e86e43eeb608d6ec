"""Regenerate `data/proto_fields.json` from Kubernetes' `generated.proto` files.

Why: kubectl's typed clients (create namespace, auth can-i, whoami, create role...) send
`application/vnd.kubernetes.protobuf` bodies; `protobuf.py` decodes them with this table of
message -> field number -> (JSON name, type, repeated). Field numbers are part of the public
wire format, so the table is data. Usage:
`python -m kubefence.control.protobuf_gen OUT.json FILE.proto...` (k8s.io/api and
apimachinery's meta/v1, runtime, intstr, resource generated.proto files).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

_PACKAGE = re.compile(r"^package\s+([\w.]+);", re.M)
_MESSAGE = re.compile(r"^message\s+(\w+)\s*\{(.*?)^\}", re.M | re.S)
_FIELD = re.compile(
    r"^\s*(optional|repeated)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)",
    re.M,
)
_JSON_NAMES = {"uID": "uid", "aPIGroup": "apiGroup"}


def _qualify(type_name: str, package: str) -> str:
    if type_name.startswith("."):
        return type_name[1:]
    if "." in type_name or type_name[0].islower():
        return type_name
    return f"{package}.{type_name}"


def parse(text: str) -> dict[str, dict[str, list[object]]]:
    package = _PACKAGE.search(text)
    assert package is not None
    pkg = package.group(1)
    out: dict[str, dict[str, list[object]]] = {}
    for name, body in _MESSAGE.findall(text):
        fields: dict[str, list[object]] = {}
        for label, kind, key_type, value_type, field, number in _FIELD.findall(body):
            json_name = _JSON_NAMES.get(field, field)
            if key_type:
                fields[number] = [
                    json_name,
                    "map",
                    _qualify(key_type, pkg),
                    _qualify(value_type, pkg),
                ]
            else:
                fields[number] = [json_name, _qualify(kind, pkg), label == "repeated"]
        out[f"{pkg}.{name}"] = fields
    return out


def main() -> None:
    table: dict[str, dict[str, list[object]]] = {}
    for path in sys.argv[2:]:
        table.update(parse(Path(path).read_text()))
    Path(sys.argv[1]).write_text(json.dumps(table, separators=(",", ":"), sort_keys=True))


if __name__ == "__main__":
    main()
