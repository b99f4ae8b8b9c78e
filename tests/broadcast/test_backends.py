"""
The contract every broadcast backend keeps, tested on each (MemoryBackend,
and RedisBackend and PostgresBackend on a real redis-server and PostgreSQL),
served in this process through Django's real ASGIHandler and WSGIHandler.
What only one backend does is tested in its own module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sse_response.broadcast import apublish
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.positions import MAX_SEQ, channel_tag, format_event_id
from tests.broadcast.conftest import Service
from tests.broadcast.helpers import (
    attached,
    numbers,
    publish_numbers,
    resets,
    streaming,
)
from tests.support import PROTOCOLS, Call

pytestmark = pytest.mark.timeout(60)

Serve = Callable[..., str]


async def test_live_events_then_a_lossless_resume(
    any_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    path = serve(streaming("orders", "news"))
    call = await start(path)
    await attached(any_backend, 1)
    await publish_numbers("orders", range(1, 4))
    await publish_numbers("news", range(4, 5))
    reading = await call.read(events=4)
    assert numbers(reading.events) == [1, 2, 3, 4]
    await call.disconnect()
    missed = await publish_numbers("orders", range(5, 8))
    assert missed[-1].startswith(f"{channel_tag('orders')}6:")

    again = await start(path, headers={"Last-Event-ID": reading.parser.last_event_id})
    await attached(any_backend, 1)
    await publish_numbers("news", range(8, 9))
    assert numbers((await again.read(events=4)).events) == [5, 6, 7, 8]
    await again.disconnect()


@pytest.mark.parametrize(
    "hostile",
    [
        "garbage",
        "x" * 65536,
        "QQQQQQQQ1:é",
        "far-future",
        "secret-channel",
        "other-epoch",
    ],
)
async def test_hostile_last_event_ids(
    any_backend: BaseBackend, serve: Serve, hostile: str
) -> None:
    """Never a 500, never an event of a channel the view did not subscribe to."""
    await publish_numbers("secret", range(100, 103))
    first = await publish_numbers("orders", range(1, 3))
    epoch = first[0].rpartition(":")[2]
    if hostile == "far-future":
        hostile = format_event_id([epoch], [channel_tag("orders")], [MAX_SEQ])
    elif hostile == "other-epoch":
        hostile = format_event_id(["gone"], [channel_tag("orders")], [1])
    elif hostile == "secret-channel":
        hostile = format_event_id([epoch], [channel_tag("secret")], [0])
    call = await PROTOCOLS["asgi"](
        serve(streaming("orders")), headers={"Last-Event-ID": hostile}
    )
    assert call.status == 200
    await attached(any_backend, 1)
    await publish_numbers("secret", range(103, 105))
    await publish_numbers("orders", range(3, 4))
    if "gone" in hostile:
        # Another epoch: a reset, then all the new epoch holds.
        expected_resets, expected = [["orders"]], [1, 2, 3]
    elif hostile.startswith(channel_tag("secret")):
        expected_resets, expected = [], [3]  # a new channel for this client: live
    else:
        expected_resets, expected = [["orders"]], [3]
    reading = await call.read(events=len(expected_resets) + len(expected))
    await call.disconnect()
    assert resets(reading.events) == expected_resets
    assert numbers(reading.events) == expected


async def test_a_replay_of_1000_events_reads_pages_of_500(
    any_backend: BaseBackend, serve: Serve
) -> None:
    reads: list[int] = []
    read = any_backend.read

    async def counting_read(channel: str, after: int, limit: int) -> Any:
        page = await read(channel, after, limit)
        reads.append(len(page.entries))
        return page

    any_backend.read = counting_read  # type: ignore[method-assign]
    ids = await publish_numbers("orders", range(1, 1002))
    call = await PROTOCOLS["asgi"](
        serve(streaming("orders")), headers={"Last-Event-ID": ids[0]}
    )
    assert numbers((await call.read(events=1000)).events) == list(range(2, 1002))
    assert reads == [500, 500]
    await call.disconnect()


async def test_200_subscribers_on_50_channels_use_2_connections(
    service: Service, serve: Serve
) -> None:
    paths = [serve(streaming(f"room-{n % 50}", f"user-{n}")) for n in range(200)]
    calls: list[Call] = [await PROTOCOLS["asgi"](path) for path in paths]
    await attached(service.backend, 200)
    for room in range(50):
        await apublish(f"room-{room}", {"data": {"n": room}})
    for n, call in enumerate(calls):
        assert numbers((await call.read(events=1)).events) == [n % 50]
    # Redis: "read" and "publish"; PostgreSQL: "listen" and "query".
    assert len(service.connections()) == 2, service.connections()
    for call in calls:
        await call.disconnect()


async def test_lost_connections_lose_nothing(service: Service, serve: Serve) -> None:
    """Every connection of the process cut three times while 400 are published."""
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(service.backend, 1)
    await publish_numbers("orders", range(100))
    for n in range(100, 400):
        await apublish("orders", {"data": {"n": n}})
        if n % 100 == 50:
            service.cut_connections()
    reading = await call.read(events=400)
    await call.disconnect()
    assert numbers(reading.events) == list(range(400))
    assert resets(reading.events) == []


async def test_a_channel_that_loses_its_last_stream_and_gets_a_new_one_at_once(
    any_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    """A page reload: the new stream attaches, whatever the backend's reader
    had still to do about the channel's last stream leaving."""
    path = serve(streaming("orders"))
    for n in range(1, 4):
        call = await start(path)
        await attached(any_backend, 1)
        await publish_numbers("orders", range(n, n + 1))
        assert numbers((await call.read(events=1)).events) == [n]
        await call.disconnect()
        await attached(any_backend, 0)


async def test_the_publish_to_send_lag_is_observed(
    any_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    from prometheus_client import REGISTRY

    from sse_response import metrics

    assert metrics.enabled()  # the app installed them when Django was ready

    def observed() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("sse_response_publish_lag_seconds_count")
        total = REGISTRY.get_sample_value("sse_response_publish_lag_seconds_sum")
        return count or 0.0, total or 0.0

    call = await start(serve(streaming("lag")))
    await attached(any_backend, 1)
    before = observed()
    await publish_numbers("lag", range(1, 4))
    assert numbers((await call.read(events=3)).events) == [1, 2, 3]
    await call.disconnect()
    count, total = observed()
    # One observation per chunk a stream takes (the oldest event in it),
    # and a lag that is a lag: neither negative nor absurd.
    assert 1 <= count - before[0] <= 3
    assert 0 <= total - before[1] < 5
