"""
The fan-out peer: encode/broadcaster (Redis) under sse-starlette, a Starlette
app (bench/fanout.py, ``--peers``). ``BENCH_REDIS_URL`` names the Redis.

``/fanout/`` streams the channel ``bench``; ``/fanout/count/`` says how many
streams are subscribed (counted once broadcaster's subscribe returned).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from broadcaster import Broadcast
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

broadcast = Broadcast(os.environ["BENCH_REDIS_URL"])
subscribed = 0


async def fanout(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, Any]]:
        global subscribed
        async with broadcast.subscribe(channel="bench") as subscriber:
            subscribed += 1
            try:
                async for event in subscriber:  # type: ignore[union-attr]
                    yield {"data": event.message}
            finally:
                subscribed -= 1

    return EventSourceResponse(events(), sep="\n", ping=3600)


async def count(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(subscribed))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    try:
        yield
    finally:
        await broadcast.disconnect()


app = Starlette(
    routes=[Route("/fanout/", fanout), Route("/fanout/count/", count)],
    lifespan=lifespan,
)
