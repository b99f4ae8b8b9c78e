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
from sse_response.broadcast.positions import MAX_SEQ, channel_tag, format_event_id
from tests.broadcast.helpers import attached, numbers, resets, streaming
from tests.broadcast.redis_server import RedisServer
from tests.support import PROTOCOLS, Call

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

Serve = Callable[..., str]


@pytest.fixture(params=sorted(PROTOCOLS))
def start(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return PROTOCOLS[request.param]


async def publish_numbers(channel: str, numbers_: range) -> list[str]:
    return [await apublish(channel, {"event": "n", "data": {"n": n}}) for n in numbers_]


async def test_live_events_then_a_lossless_resume(
    redis_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    path = serve(streaming("orders", "news"))
    call = await start(path)
    await attached(redis_backend, 1)
    await publish_numbers("orders", range(1, 4))
    await publish_numbers("news", range(4, 5))
    reading = await call.read(events=4)
    assert numbers(reading.events) == [1, 2, 3, 4]
    await call.disconnect()
    missed = await publish_numbers("orders", range(5, 8))
    assert missed[-1].endswith(f".{channel_tag('orders')}6")

    again = await start(path, headers={"Last-Event-ID": reading.parser.last_event_id})
    await attached(redis_backend, 1)
    await publish_numbers("news", range(8, 9))
    assert numbers((await again.read(events=4)).events) == [5, 6, 7, 8]
    await again.disconnect()


async def test_200_subscribers_on_50_channels_use_2_connections(
    redis_backend: BaseBackend, redis_server: RedisServer, serve: Serve
) -> None:
    paths = [serve(streaming(f"room-{n % 50}", f"user-{n}")) for n in range(200)]
    calls: list[Call] = [await PROTOCOLS["asgi"](path) for path in paths]
    await attached(redis_backend, 200)
    for room in range(50):
        await apublish(f"room-{room}", {"data": {"n": room}})
    for n, call in enumerate(calls):
        assert numbers((await call.read(events=1)).events) == [n % 50]
    mine = redis_server.clients_named(f"sse_response-{__import__('os').getpid()}-")
    assert sorted(client["name"].rsplit("-", 1)[1] for client in mine) == [
        "publish",
        "read",
    ]
    for call in calls:
        await call.disconnect()


@pytest.mark.parametrize("hostile", ["garbage", "x" * 65536, "far-future", "secret"])
async def test_hostile_last_event_ids(
    redis_backend: BaseBackend, serve: Serve, start: Callable[..., Any], hostile: str
) -> None:
    await publish_numbers("secret", range(100, 102))
    ids = await publish_numbers("orders", range(1, 3))
    epoch = ids[0].split(".")[0]
    if hostile == "far-future":
        hostile = format_event_id(epoch, [channel_tag("orders")], [MAX_SEQ])
    elif hostile == "secret":
        hostile = format_event_id(
            epoch, [channel_tag("orders"), channel_tag("secret")], [0, 0]
        )
    call = await start(serve(streaming("orders")), headers={"Last-Event-ID": hostile})
    assert call.status == 200
    await attached(redis_backend, 1)
    await publish_numbers("secret", range(102, 103))
    await publish_numbers("orders", range(3, 4))
    if hostile.endswith(f"{channel_tag('secret')}0"):
        expected_resets, expected = [], [1, 2, 3]  # orders replayed from 0
    else:
        expected_resets, expected = [["orders"]], [3]
    reading = await call.read(events=len(expected_resets) + len(expected))
    await call.disconnect()
    assert resets(reading.events) == expected_resets
    assert numbers(reading.events) == expected


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


async def test_the_reader_reconnects_and_loses_nothing(
    redis_backend: BaseBackend, redis_server: RedisServer, serve: Serve
) -> None:
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(redis_backend, 1)
    await publish_numbers("orders", range(100))
    with redis_server.client() as admin:
        for n in range(100, 400):
            await apublish("orders", {"data": {"n": n}})
            if n % 100 == 0:
                admin.client_kill_filter(skipme=True, _type="normal")
    reading = await call.read(events=400)
    await call.disconnect()
    assert numbers(reading.events) == list(range(400))
    assert resets(reading.events) == []


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
        reading = await call.read(events=61)
        got = [
            "reset" if event.type == "stream-reset" else numbers([event])[0]
            for event in reading.events
        ]
        assert got == [*range(50), "reset", *range(50, 60)]
        await call.disconnect()
    assert time.monotonic() - back < 5


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
