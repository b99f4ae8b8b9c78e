"""
The limit: a bare ASGI app that sends pre-encoded events, one
``http.response.body`` message per event, with no framework in between.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sources import async_source
from workload import encoded, params

_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stream the workload named by the query string."""
    if scope["type"] != "http":
        return  # Lifespan events: nothing to set up.
    mode, n, token = params(scope["query_string"])
    task = asyncio.current_task()
    assert task is not None

    async def watch_disconnect() -> None:
        # Ending the stream when the client leaves is part of any real
        # SSE app, and what the cleanup latency row measures.
        while (await receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.create_task(watch_disconnect())
    source = async_source(mode, n, token, encoded)
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        async for chunk in source:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watcher.done():
            raise
    finally:
        watcher.cancel()
        await source.aclose()
