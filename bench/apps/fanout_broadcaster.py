"""
The fan-out peer: encode/broadcaster (Redis) under sse-starlette, a Starlette
app (bench/fanout.py, ``--peers``). ``BENCH_REDIS_URL`` names the Redis.

``/fanout/`` streams the channel ``bench``, ``/channels/<i>/`` the channel
``u<i>`` (bench/channels.py); ``/fanout/count/`` says how many streams are
subscribed (counted once broadcaster's subscribe returned).
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
    return stream("bench")


async def one_channel(request: Request) -> EventSourceResponse:
    return stream(f"u{request.path_params['i']}")


def stream(channel: str) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, Any]]:
        global subscribed
        async with broadcast.subscribe(channel=channel) as subscriber:
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
    routes=[
        Route("/fanout/", fanout),
        Route("/channels/{i:int}/", one_channel),
        Route("/fanout/count/", count),
    ],
    lifespan=lifespan,
)
