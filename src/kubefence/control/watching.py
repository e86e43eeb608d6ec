"""Watch streams: chunked JSON lines of `{"type": ..., "object": ...}`, as client-go expects.

Semantics of the `resourceVersion` parameter follow the API server: unset or "0" first sends the
current objects as ADDED, then changes; "N" sends changes after N, or one ERROR event carrying a
410 `Expired` Status when N is older than the store remembers (the client re-lists).
`sendInitialEvents=true` ends the initial ADDED events with a BOOKMARK annotated
`k8s.io/initial-events-end`; `allowWatchBookmarks=true` adds periodic BOOKMARKs;
`timeoutSeconds` ends the stream. With label or field selectors, an object that starts matching
arrives as ADDED and one that stops matching as DELETED, as the API server's watch cache does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from kubefence.control.objects import Objects
from kubefence.control.registry import ResourceType
from kubefence.control.selectors import FieldSelector, LabelSelector
from kubefence.control.status import status_body, store_failure
from kubefence.control.store import RevisionCompacted, StoredValue, StoreError
from kubefence.control.stored import decode
from kubefence.control.tables import table, wants_table

__all__ = ["BOOKMARK_SECONDS", "watch_response"]

BOOKMARK_SECONDS = 5.0
Obj = dict[str, Any]


async def watch_response(
    request: web.Request,
    objects: Objects,
    rt: ResourceType,
    namespace: str,
    labels: LabelSelector,
    fields: FieldSelector,
) -> web.StreamResponse:
    query = request.query
    as_table = wants_table(request.headers.get("Accept", ""))
    include = query.get("includeObject", "Metadata")
    bookmarks = query.get("allowWatchBookmarks") == "true"
    initial_end = query.get("sendInitialEvents") == "true"
    timeout = float(query.get("timeoutSeconds", "0") or 0) or None
    requested = query.get("resourceVersion", "")

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)

    async def send(kind: str, obj: Obj) -> None:
        if as_table and kind in ("ADDED", "MODIFIED", "DELETED"):
            obj = table(
                rt,
                [obj],
                include_object=include,
                resource_version=obj["metadata"].get("resourceVersion", ""),
            )
        line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n"
        await response.write(line.encode())

    def bookmark(revision: int, *, end: bool = False) -> Obj:
        metadata: Obj = {"resourceVersion": str(revision)}
        if end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": metadata}

    def selected(obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        return labels.matches(meta.get("labels") or {}) and fields.matches(obj)

    filtered = bool(labels.requirements or fields.terms)
    known: set[str] = set()  # keys of selected objects, so leaving the selection is DELETED
    if requested in ("", "0") or initial_end:
        items, after, _ = await objects.list(rt, namespace, labels=labels, fields=fields)
        for obj in items:
            known.add(_name_key(obj))
            await send("ADDED", obj)
        if initial_end:
            await send("BOOKMARK", bookmark(after, end=True))
    else:
        try:
            after = int(requested)
        except ValueError:
            await send(
                "ERROR", status_body(400, "BadRequest", f"invalid resourceVersion {requested!r}")
            )
            return response
        if filtered:  # what is selected now stands in for what was selected at `after`
            items, _, _ = await objects.list(rt, namespace, labels=labels, fields=fields)
            known = {_name_key(obj) for obj in items}

    events = objects.watch(rt, namespace, after=after).__aiter__()
    last = after
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    try:
        while True:
            wait = BOOKMARK_SECONDS if bookmarks else None
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    break
                wait = left if wait is None else min(wait, left)
            try:
                event = await asyncio.wait_for(events.__anext__(), wait)
            except TimeoutError:
                if bookmarks:
                    await send("BOOKMARK", bookmark(last))
                continue
            except StopAsyncIteration:
                break
            except RevisionCompacted as error:
                await send(
                    "ERROR",
                    status_body(410, "Expired", f"too old resource version: {after} ({error})"),
                )
                break
            except StoreError as error:  # the stream has begun: the failure is its last event
                await send("ERROR", store_failure(error))
                break
            last = event.revision
            obj = decode(StoredValue(event.key, event.value, event.revision))
            if not filtered:
                await send(event.type, obj)
                continue
            key = _name_key(obj)
            if event.type == "DELETED":
                if key in known:
                    known.discard(key)
                    await send("DELETED", obj)
            elif selected(obj):
                added = event.type == "ADDED" or key not in known
                await send("ADDED" if added else "MODIFIED", obj)
                known.add(key)
            elif key in known:  # it no longer matches: gone from this watcher's view
                known.discard(key)
                await send("DELETED", obj)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


def _name_key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
