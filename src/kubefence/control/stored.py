"""An object's stored form: JSON bytes whose resourceVersion is the store's revision.

Why a module of its own: the object service (`objects.py`), watch streams and start-up all turn
stored values into objects, and fast lists splice the revision into the stored bytes without
decoding them; these few functions are that contract, kept apart from the write rules.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kubefence.control.store import StoredValue

__all__ = ["decode", "encode", "now_rfc3339", "splice"]

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(stored: StoredValue) -> Obj:
    """A stored value as an object with its resourceVersion."""
    obj: Obj = json.loads(stored.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(stored.revision)
    return obj


_HEAD = b'{"metadata":{'


def encode(obj: Obj) -> bytes:
    """The stored form: metadata first and without resourceVersion (the store's revision is)."""
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    stored = {"metadata": metadata, **{k: v for k, v in obj.items() if k != "metadata"}}
    return json.dumps(stored, separators=(",", ":")).encode()


def splice(stored: StoredValue) -> bytes:
    """The object's JSON with its resourceVersion, without decoding it (fast lists)."""
    value = stored.value
    if value.startswith(_HEAD) and value[len(_HEAD) : len(_HEAD) + 1] not in (b"}", b""):
        version = f'{{"metadata":{{"resourceVersion":"{stored.revision}",'.encode()
        return version + value[len(_HEAD) :]
    return json.dumps(decode(stored), separators=(",", ":")).encode()
