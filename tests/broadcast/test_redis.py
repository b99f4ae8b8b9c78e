"""
Broadcast on the RedisBackend with a real redis-server, served in this
process through Django's real ASGIHandler and WSGIHandler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from sse_response.broadcast import BroadcastError, apublish, publish
from sse_response.broadcast.base import BaseBackend
from sse_response.parsing import ServerSentEvent
from tests.broadcast.helpers import (
    attached,
    numbers,
    publish_numbers,
    resets,
    streaming,
)
from tests.broadcast.redis_server import RedisServer
from tests.support import PROTOCOLS, Call

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

Serve = Callable[..., str]


async def test_trimmed_history_is_reset(
    redis_server: RedisServer, serve: Serve
) -> None:
    from django.test import override_settings

    from sse_response.broadcast import get_backend

    setting = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": redis_server.url,
        "OPTIONS": {"history": 10},
    }
    with override_settings(SSE_RESPONSE_BROADCAST=setting):
        backend = get_backend()
        ids = await publish_numbers("orders", range(1, 1001))
        call = await PROTOCOLS["asgi"](
            serve(streaming("orders")), headers={"Last-Event-ID": ids[0]}
        )
        await attached(backend, 1)
        await publish_numbers("orders", range(1001, 1002))
        reading = await call.read(events=2)
        await call.disconnect()
    assert resets(reading.events) == [["orders"]]
    assert numbers(reading.events) == [1001]


async def test_redis_killed_and_restarted_empty(
    redis_backend: BaseBackend, redis_server: RedisServer, serve: Serve
) -> None:
    """
    publish() raises while Redis is down; every open stream has everything
    publish() reported stored, or a reset at the gap, and gets new events
    within 5 s of Redis being back.
    """
    calls = [await PROTOCOLS[p](serve(streaming("orders"))) for p in ("asgi", "wsgi")]
    await attached(redis_backend, 2)
    stored = []
    for n in range(50):
        await apublish("orders", {"data": {"n": n}})
        stored.append(n)
    redis_server.kill()
    with pytest.raises(BroadcastError):
        await asyncio.to_thread(publish, "orders", {"data": {"n": -1}})
    redis_server.start()
    back = time.monotonic()
    # The first publish after the restart is stored (a new epoch).
    for n in range(50, 60):
        await apublish("orders", {"data": {"n": n}})
        stored.append(n)
    for call in calls:
        events = await asyncio.wait_for(read_until(call, 59), 10)
        got = [
            "reset" if event.type == "stream-reset" else numbers([event])[0]
            for event in events
        ]
        # What the reader had read before Redis died, then a reset for what
        # died with it (the lot, if the reader had read everything), then
        # everything stored after the restart.
        gap = got.index("reset")
        assert got == [*range(gap), "reset", *range(50, 60)]
        await call.disconnect()
    assert time.monotonic() - back < 5


async def read_until(call: Call, last: int) -> list[ServerSentEvent]:
    """Read ``call`` until an event with ``n == last``; return every event."""
    while True:
        events = (await call.read(events=len(call.reading.events) + 1)).events
        if events[-1].type != "stream-reset" and numbers(events[-1:]) == [last]:
            return events


async def test_a_replay_of_1000_events_takes_one_round_trip_per_500(
    redis_backend: BaseBackend, redis_server: RedisServer, serve: Serve
) -> None:
    """Each read of a replay is one pipelined round trip (XRANGE COUNT 500)."""
    reads: list[int] = []
    read = redis_backend.read

    async def counting_read(channel: str, after: int, limit: int) -> Any:
        page = await read(channel, after, limit)
        reads.append(len(page.entries))
        return page

    redis_backend.read = counting_read  # type: ignore[method-assign]
    ids = await publish_numbers("orders", range(1, 1002))
    with redis_server.client() as admin:
        commands_before = admin.info("stats")["total_commands_processed"]
    call = await PROTOCOLS["asgi"](
        serve(streaming("orders")), headers={"Last-Event-ID": ids[0]}
    )
    assert numbers((await call.read(events=1000)).events) == list(range(2, 1002))
    await call.disconnect()
    assert reads == [500, 500]
    with redis_server.client() as admin:
        commands = admin.info("stats")["total_commands_processed"] - commands_before
    # Two pages of two commands each (XRANGE, XREVRANGE), plus the new
    # channel's position (XREVRANGE), CLIENT UNBLOCK, the reader's XREADs and
    # these INFO calls: far fewer than one command per event.
    assert commands < 40, commands
