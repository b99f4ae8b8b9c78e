"""
The fan-out floor: a bare ASGI app (no Django, no library) that broadcasts to
its streams in-process (bench/fanout.py, backend ``raw``).

Each stream is a task waiting on a queue of its own; a publish encodes the
event once and puts it in every queue, so each stream costs one wake-up and
one ``send()`` per event: the least any ASGI app that fans out pays, and so
the floor for the latency figures of the other rows.

``/fanout/`` streams; ``/fanout/count/`` says how many streams are open;
``/fanout/publish/?count=N&interval=S&first=F`` publishes as the memory row's
view does, each event carrying its time of publishing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

from raw_asgi import cancel_on_disconnect

_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
]
_TEXT_HEADERS = [(b"content-type", b"text/plain")]

subscribers: set[asyncio.Queue[bytes]] = set()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/fanout/":
        await stream(receive, send)
    elif path == "/fanout/count/":
        await text(send, str(len(subscribers)))
    elif path == "/fanout/publish/":
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        count, interval = int(query["count"]), float(query["interval"])
        first = int(query.get("first", "1"))
        for n in range(first, first + count):
            data = json.dumps({"n": n, "at": time.time()}, separators=(",", ":"))
            chunk = f"data: {data}\n\n".encode()
            for queue in subscribers:
                queue.put_nowait(chunk)
            if interval:
                await asyncio.sleep(interval)
        await text(send, f"published {count}\n")
    else:
        await text(send, "not found\n", status=404)


async def stream(receive: Any, send: Any) -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    watcher = cancel_on_disconnect(receive)
    await send(
        {"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS}
    )
    subscribers.add(queue)
    try:
        while True:
            chunk = await queue.get()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except asyncio.CancelledError:
        if not watcher.done():
            raise
    finally:
        subscribers.discard(queue)
        watcher.cancel()


async def text(send: Any, body: str, status: int = 200) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": _TEXT_HEADERS}
    )
    await send({"type": "http.response.body", "body": body.encode()})
