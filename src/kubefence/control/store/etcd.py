"""The etcd store: the API server's keys in a real etcd, as kube-apiserver keeps them.

Why the JSON gateway over aiohttp and not a gRPC client library: etcd 3.4 serves its v3 API also
as JSON over HTTPS (the gRPC gateway, on the client port, under the same mutual TLS), so the
store needs nothing beyond aiohttp, which the API server already uses; it is asynchronous like the
server, and it works with Debian's etcd 3.4 as is. ``etcd3gw`` would be synchronous (requests),
and ``aetcd`` brings grpcio/protobuf pins for no gain at this scale.

Mapping of the ``Store`` protocol: an object's revision is its etcd ``mod_revision``; create is a
transaction "create_revision == 0 then put"; update/delete compare ``mod_revision`` (or existence)
and, when the comparison fails, read the key in the same transaction to tell KeyMissing from
Conflict; list is a range read at one revision (the response header's); watch is a streaming
watch from ``after + 1`` with ``prev_kv`` (a DELETED event carries the last value), and a
compacted start revision becomes RevisionCompacted, which the server turns into 410 Gone.
"""

from __future__ import annotations

import base64
import io
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from kubefence.control.store.base import (
    Conflict,
    KeyExists,
    KeyMissing,
    RevisionCompacted,
    StoredValue,
    StoreError,
    WatchEvent,
)

__all__ = ["EtcdStore", "EtcdStoreError"]

_Requests = list[dict[str, Any]]  # (a name: inside the class, "list" is the Store method)
_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)
_WATCH_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_read=None)


class EtcdStoreError(StoreError):
    """etcd could not be reached or answered with an error (HTTP 503/500 at the API)."""


def _payload(body: dict[str, Any]) -> bytes | io.BytesIO:
    """The JSON body; large ones as a stream, which aiohttp sends without blocking the loop."""
    data = json.dumps(body).encode()
    return io.BytesIO(data) if len(data) > 512 * 1024 else data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for a prefix: the prefix with its last byte < 0xff incremented."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # empty prefix: every key


def _value(kv: dict[str, Any]) -> StoredValue:
    return StoredValue(
        _unb64(kv.get("key")).decode(), _unb64(kv.get("value")), int(kv.get("mod_revision", 0))
    )


class EtcdStore:
    """A ``Store`` in etcd v3; create with ``await EtcdStore.open(url, ssl_context)``."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self._url = url.rstrip("/")
        self._session = session
        self._watches: set[aiohttp.ClientResponse] = set()
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        ssl_context: ssl.SSLContext | None = None,
        *,
        ca_cert: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
    ) -> EtcdStore:
        """Connect to etcd at ``url`` (``https://127.0.0.1:<port>``) and check it answers.

        TLS comes from ``ssl_context`` or is built from the three PEM files (etcd CA, the API
        server's etcd client certificate and key).
        """
        if ssl_context is None:
            if ca_cert is None or client_cert is None or client_key is None:
                raise ValueError(
                    "EtcdStore.open needs ssl_context or ca_cert+client_cert+client_key"
                )
            ssl_context = ssl.create_default_context(cafile=str(ca_cert))
            ssl_context.load_cert_chain(client_cert, client_key)
        connector = aiohttp.TCPConnector(ssl=ssl_context, limit=0, enable_cleanup_closed=True)
        session = aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT)
        store = cls(url, session)
        try:
            await store.revision()
        except BaseException:
            await session.close()
            raise
        return store

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise EtcdStoreError("store is closed")
        try:
            async with self._session.post(f"{self._url}{path}", data=_payload(body)) as resp:
                text = await resp.read()
                if resp.status != 200:
                    raise EtcdStoreError(f"etcd {path}: HTTP {resp.status}: {text[:300]!r}")
                data: dict[str, Any] = json.loads(text)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise EtcdStoreError(f"etcd {path}: {exc or type(exc).__name__}") from exc
        return data

    async def _txn(
        self, compare: _Requests, success: _Requests, key: bytes
    ) -> tuple[bool, dict[str, Any]]:
        """Run a transaction whose failure branch reads ``key``; (succeeded, response)."""
        reply = await self._call(
            "/v3/kv/txn",
            {"compare": compare, "success": success,
             "failure": [{"request_range": {"key": _b64(key)}}]},
        )  # fmt: skip
        return bool(reply.get("succeeded")), reply

    @staticmethod
    def _failed_current(reply: dict[str, Any]) -> dict[str, Any] | None:
        """The key as the failure branch read it, or None when it does not exist."""
        responses = reply.get("responses") or [{}]
        kvs = (responses[0].get("response_range") or {}).get("kvs") or []
        return kvs[0] if kvs else None

    # -- the Store protocol -----------------------------------------------------------------

    async def get(self, key: str) -> StoredValue | None:
        reply = await self._call("/v3/kv/range", {"key": _b64(key.encode())})
        kvs = reply.get("kvs") or []
        return _value(kvs[0]) if kvs else None

    async def list(
        self, prefix: str, *, limit: int = 0, after_key: str = ""
    ) -> tuple[list[StoredValue], int]:
        start = prefix.encode()
        if after_key:
            start = max(start, after_key.encode() + b"\0")
        body: dict[str, Any] = {"key": _b64(start), "range_end": _b64(_prefix_end(prefix.encode()))}
        if limit > 0:
            body["limit"] = limit
        reply = await self._call("/v3/kv/range", body)
        items = [_value(kv) for kv in reply.get("kvs") or []]
        return items, int(reply["header"]["revision"])

    async def create(self, key: str, value: bytes) -> int:
        k = key.encode()
        ok, reply = await self._txn(
            [{"target": "CREATE", "key": _b64(k), "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": _b64(k), "value": _b64(value)}}],
            k,
        )
        if not ok:
            raise KeyExists(key)
        return int(reply["header"]["revision"])

    def _guard(self, key: bytes, expected: int | None) -> _Requests:
        if expected is None:  # exists
            return [{"target": "CREATE", "key": _b64(key), "result": "GREATER",
                     "create_revision": "0"}]  # fmt: skip
        return [{"target": "MOD", "key": _b64(key), "result": "EQUAL",
                 "mod_revision": str(expected)}]  # fmt: skip

    async def update(self, key: str, value: bytes, *, expected: int | None) -> int:
        k = key.encode()
        ok, reply = await self._txn(
            self._guard(k, expected), [{"request_put": {"key": _b64(k), "value": _b64(value)}}], k
        )
        if not ok:
            raise KeyMissing(key) if self._failed_current(reply) is None else Conflict(key)
        return int(reply["header"]["revision"])

    async def delete(self, key: str, *, expected: int | None = None) -> StoredValue:
        k = key.encode()
        ok, reply = await self._txn(
            self._guard(k, expected),
            [{"request_delete_range": {"key": _b64(k), "prev_kv": True}}],
            k,
        )
        if not ok:
            raise KeyMissing(key) if self._failed_current(reply) is None else Conflict(key)
        deleted = (reply.get("responses") or [{}])[0].get("response_delete_range") or {}
        prev = (deleted.get("prev_kvs") or [{}])[0]
        return StoredValue(key, _unb64(prev.get("value")), int(reply["header"]["revision"]))

    async def watch(self, prefix: str, *, after: int) -> AsyncIterator[WatchEvent]:
        p = prefix.encode()
        create = {"key": _b64(p), "range_end": _b64(_prefix_end(p)),
                  "start_revision": str(after + 1), "prev_kv": True}  # fmt: skip
        request = {"create_request": create}
        if self._closed:
            return
        try:
            resp = await self._session.post(
                f"{self._url}/v3/watch", data=json.dumps(request), timeout=_WATCH_TIMEOUT
            )
        except aiohttp.ClientError as exc:
            raise EtcdStoreError(f"etcd watch: {exc}") from exc
        self._watches.add(resp)
        try:
            if resp.status != 200:
                raise EtcdStoreError(f"etcd watch: HTTP {resp.status}")
            async for message in _messages(resp):
                result = message.get("result")
                if not isinstance(result, dict):
                    raise EtcdStoreError(f"etcd watch: {message.get('error', message)}")
                if int(result.get("compact_revision", 0) or 0) > 0:
                    raise RevisionCompacted(
                        f"revision {after} is compacted (oldest kept: {result['compact_revision']})"
                    )
                if result.get("canceled"):
                    raise EtcdStoreError(f"etcd cancelled the watch: {result.get('cancel_reason')}")
                for event in result.get("events") or ():
                    yield _event(event)
        except (TimeoutError, aiohttp.ClientError) as exc:
            if not self._closed:
                raise EtcdStoreError(f"etcd watch: {exc or type(exc).__name__}") from exc
        finally:
            self._watches.discard(resp)
            resp.close()

    async def revision(self) -> int:
        reply = await self._call("/v3/kv/range", {"key": _b64(b"\0"), "count_only": True})
        return int(reply["header"]["revision"])

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision`` (watches from older revisions then get 410)."""
        await self._call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for resp in list(self._watches):
            resp.close()
        await self._session.close()


def _event(event: dict[str, Any]) -> WatchEvent:
    kv = event.get("kv") or {}
    key = _unb64(kv.get("key")).decode()
    revision = int(kv.get("mod_revision", 0))
    if event.get("type") == "DELETE":
        prev = event.get("prev_kv") or {}
        return WatchEvent("DELETED", key, _unb64(prev.get("value")), revision)
    created = kv.get("create_revision") == kv.get("mod_revision")
    return WatchEvent("ADDED" if created else "MODIFIED", key, _unb64(kv.get("value")), revision)


async def _messages(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The newline-delimited JSON messages of a gateway stream, of any length."""
    buffer = bytearray()
    async for chunk in resp.content.iter_any():
        buffer += chunk
        while (cut := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:cut])
            del buffer[: cut + 1]
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError as exc:
                raise EtcdStoreError(f"etcd watch: unreadable message {line[:200]!r}") from exc
            yield message
