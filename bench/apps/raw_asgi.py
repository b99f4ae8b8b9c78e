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
    watcher = cancel_on_disconnect(receive)
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


def cancel_on_disconnect(receive: Any) -> asyncio.Task[None]:
    """
    Cancel the calling task when the client leaves; return the watching task
    (cancel it when the stream ends). Ending the stream when the client
    leaves is part of any real SSE app, and what the cleanup latency row
    measures.
    """
    task = asyncio.current_task()
    assert task is not None

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    return asyncio.create_task(watch())
