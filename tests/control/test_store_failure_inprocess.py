"""A failing store seen through the HTTP layer, in process (no etcd needed, runs everywhere).

A store that raises ``StoreError`` (what the etcd store raises when etcd is unreachable) must
give a 503 ServiceUnavailable Status on a plain request, and end a watch that is already
streaming with one ERROR event carrying that Status (the response has begun, so the status code
can no longer change).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubefence.control.app import bootstrap, open_objects
from kubefence.control.context import ServerConfig
from kubefence.control.server import make_app
from kubefence.control.store import StoreError, WatchEvent
from kubefence.control.store.sqlite import SqliteStore


class _Failing:
    """The wrapped store, except that reads and watches fail once ``broken`` is set."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def list(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            raise StoreError("etcd /v3/kv/range: connection refused")
        return await self.inner.list(*args, **kwargs)

    async def watch(self, prefix: str, *, after: int) -> AsyncIterator[WatchEvent]:
        raise StoreError("etcd watch: connection reset")
        yield  # an async generator, as the real ones


# The server keeps per-request values under string keys; aiohttp 3.14 warns about that.
@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
def test_store_errors_become_503_and_end_a_watch_with_an_error_event(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "db")
        failing = _Failing(store)
        objects, _ = await open_objects(failing)  # type: ignore[arg-type]
        await bootstrap(objects)
        app = make_app(ServerConfig(objects=objects, authenticator=None, authorizer=None))
        try:
            async with TestClient(TestServer(app)) as client:
                url = "/api/v1/namespaces/default/configmaps"
                answer = await client.get(url)
                assert answer.status == 200
                revision = (await answer.json())["metadata"]["resourceVersion"]

                failing.broken = True
                answer = await client.get(url)
                status = await answer.json()
                assert answer.status == 503
                assert status["reason"] == "ServiceUnavailable"
                assert status["message"] == (
                    "the storage backend failed: etcd /v3/kv/range: connection refused"
                )

                answer = await client.get(f"{url}?watch=1&resourceVersion={revision}")
                assert answer.status == 200  # the stream had begun
                lines = (await answer.text()).splitlines()
                assert len(lines) == 1
                event = json.loads(lines[0])
                assert event["type"] == "ERROR"
                assert event["object"]["code"] == 503
                assert event["object"]["message"].endswith("etcd watch: connection reset")
        finally:
            await store.close()

    asyncio.run(body())
