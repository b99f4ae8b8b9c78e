"""
Broadcast on the MemoryBackend, served through Django's real ASGIHandler and
WSGIHandler: live fan-out, lossless resume, resets, end_streams(), slow
subscribers, and what publish() refuses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.test import override_settings

from sse_response import InvalidMessageError
from sse_response.broadcast import (
    InvalidChannelError,
    aend_streams,
    apublish,
    end_streams,
    publish,
    subscribe,
)
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.positions import MAX_SEQ, channel_tag, format_event_id
from sse_response.broadcast.stream import Subscription
from tests.broadcast.conftest import UseBackend
from tests.broadcast.helpers import (
    attached,
    numbers,
    publish_numbers,
    resets,
    streaming,
)
from tests.support import PROTOCOLS, Call

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

Serve = Callable[..., str]


async def test_every_subscriber_gets_every_event_with_its_position(
    memory_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    path = serve(streaming("orders", "other"))
    calls: list[Call] = [await start(path) for _ in range(3)]
    await attached(memory_backend, 3)
    ids = await publish_numbers("orders", range(1, 6))
    await apublish("other", {"data": {"n": 6}})
    for call in calls:
        reading = await call.read(events=6)
        assert numbers(reading.events) == [1, 2, 3, 4, 5, 6]
        assert [event.type for event in reading.events[:5]] == ["n"] * 5
        epoch = ids[0].rpartition(":")[2]
        assert reading.events[4].last_event_id == format_event_id(
            [epoch, epoch], [channel_tag("orders"), channel_tag("other")], [5, 0]
        )
        assert reading.events[5].last_event_id.endswith(f"{channel_tag('other')}1")
        await call.disconnect()
    await attached(memory_backend, 0)


async def test_a_client_that_comes_back_gets_exactly_what_it_missed(
    memory_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    path = serve(streaming("orders"))
    call = await start(path)
    await attached(memory_backend, 1)
    await publish_numbers("orders", range(1, 4))
    reading = await call.read(events=3)
    await call.disconnect()
    await publish_numbers("orders", range(4, 8))

    again = await start(
        path, headers={"Last-Event-ID": reading.events[-1].last_event_id}
    )
    await attached(memory_backend, 1)
    await publish_numbers("orders", range(8, 10))
    assert numbers((await again.read(events=6)).events) == [4, 5, 6, 7, 8, 9]
    await again.disconnect()


async def test_publish_and_subscribe_from_many_threads_and_loops(
    memory_backend: BaseBackend, serve: Serve
) -> None:
    """
    Publishers in 4 threads; subscribers on this loop (ASGI) and on the
    WSGI streams' own loops.
    """
    path = serve(streaming("busy"))
    calls = [await PROTOCOLS[protocol](path) for protocol in ["asgi", "wsgi"] * 3]
    await attached(memory_backend, 6)

    def publisher(first: int) -> None:
        for n in range(first, first + 250):
            publish("busy", {"data": {"n": n}})

    threads = [
        threading.Thread(target=publisher, args=(first,))
        for first in range(0, 1000, 250)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join, 10)
    for call in calls:
        got = numbers((await call.read(events=1000)).events)
        assert sorted(got) == list(range(1000))
        # Each publisher's events arrive in the order it published them.
        for first in range(0, 1000, 250):
            mine = [n for n in got if first <= n < first + 250]
            assert mine == sorted(mine)
        await call.disconnect()


async def test_a_position_that_history_no_longer_covers_is_reset(
    use_memory_backend: UseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    backend = use_memory_backend(history=5)
    ids = await publish_numbers("orders", range(1, 21))
    call = await start(serve(streaming("orders")), headers={"Last-Event-ID": ids[2]})
    await attached(backend, 1)
    await publish_numbers("orders", range(21, 23))
    events = (await call.read(events=3)).events
    assert events[0].type == "stream-reset"
    assert resets(events) == [["orders"]]
    assert numbers(events) == [21, 22]
    await call.disconnect()


async def test_end_streams_ends_every_stream_of_the_channel_only(
    memory_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    revoked = await start(serve(streaming("orders", "news")))
    kept = await start(serve(streaming("news")))
    await attached(memory_backend, 2)
    await publish_numbers("orders", range(1, 3))
    await aend_streams("orders")
    reading = await revoked.read_to_end()
    assert numbers(reading.events) == [1, 2]
    assert reading.parser.retry == 1000
    await publish_numbers("news", range(3, 4))
    assert numbers((await kept.read(events=1)).events) == [3]
    await kept.disconnect()

    # The client comes back: it is replayed what followed, and not ended again.
    await publish_numbers("orders", range(4, 5))
    again = await start(
        serve(streaming("orders", "news")),
        headers={"Last-Event-ID": reading.parser.last_event_id},
    )
    # Order holds within a channel; a replay goes one channel after the other.
    assert sorted(numbers((await again.read(events=2)).events)) == [3, 4]
    await again.disconnect()


async def test_a_subscriber_too_slow_is_ended_and_resumes_without_a_gap(
    use_memory_backend: UseBackend,
) -> None:
    backend = use_memory_backend(buffer=4096)
    stream = Subscription(("orders",), None).events
    slow = stream(None)
    fast = stream(None)
    first_slow = asyncio.ensure_future(slow.__anext__())
    first_fast = asyncio.ensure_future(fast.__anext__())
    await attached(backend, 2)
    backend.append("orders", b"data: 0\n\n")
    await first_slow
    await first_fast
    # Without letting the loop run, 100 events of 100 bytes: past the buffer.
    for n in range(1, 101):
        backend.append("orders", b"data: %d%s\n\n" % (n, b" " * 90))
    assert backend.hub.subscriber_count() == 0  # both cut off, memory freed
    assert await slow.__anext__() == {"retry_ms": 1000}
    await slow.aclose()
    await fast.aclose()


async def test_publish_refuses_what_it_cannot_send(memory_backend: BaseBackend) -> None:
    with pytest.raises(SynchronousOnlyOperation, match=r"await apublish\(\)"):
        publish("orders", {"data": 1})
    with pytest.raises(SynchronousOnlyOperation, match=r"aend_streams"):
        end_streams("orders")
    with pytest.raises(InvalidMessageError, match="assigned by the broadcast layer"):
        await apublish("orders", {"id": "7", "data": 1})
    with pytest.raises(InvalidMessageError, match="needs data or an event"):
        await apublish("orders", {"comment": "x"})
    with pytest.raises(InvalidMessageError, match="'event'"):
        await apublish("orders", {"event": "a\nb", "data": 1})
    with pytest.raises(InvalidChannelError, match="'bad channel'"):
        await apublish("bad channel", {"data": 1})
    with pytest.raises(InvalidChannelError, match="'a,b'"):
        subscribe("ok", "a,b")
    with pytest.raises(InvalidChannelError, match="at least one"):
        subscribe()


@override_settings(ROOT_URLCONF="tests.broadcast.urls")
async def test_publish_from_a_sync_view_under_wsgi_and_an_async_view_under_asgi(
    memory_backend: BaseBackend,
) -> None:
    streams = [
        await PROTOCOLS[protocol]("/stream/orders/") for protocol in ("asgi", "wsgi")
    ]
    await attached(memory_backend, 2)
    from_wsgi = await PROTOCOLS["wsgi"]("/publish/orders/?n=1")
    assert from_wsgi.status == 200
    body = (await from_wsgi.read_to_end()).body.decode()
    assert body.startswith(f"{channel_tag('orders')}1:")
    from_asgi = await PROTOCOLS["asgi"]("/apublish/orders/?n=2")
    assert from_asgi.status == 200
    assert (
        (await from_asgi.read_to_end())
        .body.decode()
        .startswith(f"{channel_tag('orders')}2:")
    )
    for call in streams:
        assert numbers((await call.read(events=2)).events) == [1, 2]
        await call.disconnect()


async def test_a_far_future_id_loses_nothing_published_while_the_stream_starts(
    memory_backend: BaseBackend, serve: Serve
) -> None:
    """
    The stream reads history to check a position beyond the channel's last
    event; what is published meanwhile, after the live start, still comes.
    """
    ids = await publish_numbers("orders", range(1, 3))
    far = format_event_id(
        [ids[0].rpartition(":")[2]], [channel_tag("orders")], [MAX_SEQ]
    )
    read = memory_backend.read

    async def read_after_a_publish(channel: str, after: int, limit: int) -> Any:
        await apublish(channel, {"event": "n", "data": {"n": 3}})
        return await read(channel, after, limit)

    memory_backend.read = read_after_a_publish  # type: ignore[method-assign]
    call = await PROTOCOLS["asgi"](
        serve(streaming("orders")), headers={"Last-Event-ID": far}
    )
    reading = await call.read(events=2)
    await call.disconnect()
    assert resets(reading.events) == [["orders"]]
    assert numbers(reading.events) == [3]


async def test_signals_of_a_reset_and_of_end_streams(
    memory_backend: BaseBackend, serve: Serve
) -> None:
    """
    The broadcast stream sends stream_reset with every reset it sends, and
    its stream_finished says 'ended' after end_streams().
    """
    from sse_response import signals
    from sse_response.broadcast import aend_streams

    resets: list[dict[str, Any]] = []
    finished: list[dict[str, Any]] = []

    def on_reset(**kwargs: Any) -> None:
        resets.append(kwargs)

    def on_finished(**kwargs: Any) -> None:
        finished.append(kwargs)

    signals.stream_reset.connect(on_reset)
    signals.stream_finished.connect(on_finished)
    try:
        path = serve(streaming("orders", "news"))
        call = await PROTOCOLS["asgi"](path, headers={"Last-Event-ID": "unreadable"})
        await attached(memory_backend, 1)
        assert (await call.read(events=1)).events[0].type == "stream-reset"
        assert [reset["channels"] for reset in resets] == [["orders", "news"]]
        assert resets[0]["sender"] is Subscription
        assert resets[0]["request"].path == path
        await aend_streams("news")
        await call.read_to_end()
        for _ in range(200):
            if finished:
                break
            await asyncio.sleep(0.01)
        assert [sent["reason"] for sent in finished] == ["ended"]
    finally:
        signals.stream_reset.disconnect(on_reset)
        signals.stream_finished.disconnect(on_finished)
