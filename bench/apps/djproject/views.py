"""
The Django views of the benchmark. Each library is imported inside its view,
as the djblets venv has no sse_response and the main venv has no djblets.

A view's kind (``async def`` or ``def``) follows its source, as a user would
write it: Django runs a sync view in a worker thread under ASGI.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from sources import async_source, sync_source
from workload import encoded, message, params


async def plain(request: HttpRequest) -> StreamingHttpResponse:
    """Django's StreamingHttpResponse over an async generator of bytes."""
    mode, n, token = params(request.META["QUERY_STRING"])
    response = StreamingHttpResponse(
        async_source(mode, n, token, encoded), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    return response


async def sse_async(request: HttpRequest) -> HttpResponse:
    """sse_response with an async generator of message dicts."""
    from sse_response import EventStreamHttpResponse

    mode, n, token = params(request.META["QUERY_STRING"])
    return EventStreamHttpResponse(
        async_source(mode, n, token, message), request=request
    )


def sse_sync(request: HttpRequest) -> HttpResponse:
    """sse_response with a sync generator of message dicts."""
    from sse_response import EventStreamHttpResponse

    mode, n, token = params(request.META["QUERY_STRING"])
    return EventStreamHttpResponse(
        sync_source(mode, n, token, message), request=request
    )


def djblets(request: HttpRequest) -> HttpResponse:
    """djblets' EventStreamHttpResponse with a sync generator of message dicts."""
    from djblets.http.responses import EventStreamHttpResponse

    mode, n, token = params(request.META["QUERY_STRING"])
    return EventStreamHttpResponse(
        sync_source(mode, n, token, message), request=request
    )


def eventstream(request: HttpRequest) -> HttpResponse:
    """django-eventstream's own view, listening on the channel ``bench``."""
    from django_eventstream.views import events

    return events(request, channel="bench")


async def eventstream_publish(request: HttpRequest) -> HttpResponse:
    """
    Publish ``n`` events to the channel ``bench`` with ``send_event``.

    django-eventstream queues at most 10 events per listener and drops the
    rest (without storage there is no replay), so the publisher waits, by
    letting the event loop run, while any listener has 8 or more pending:
    what the client receives is then the library's delivery rate, not the
    publisher's. Bounded to 60 seconds.
    """
    from django_eventstream import send_event
    from django_eventstream.views import get_listener_manager

    _mode, n, _token = params(request.META["QUERY_STRING"])
    manager = get_listener_manager()
    data = message(0)["data"]
    deadline = time.monotonic() + 60
    for _i in range(n):
        # Polling, as the library offers nothing to wait on.
        while time.monotonic() < deadline and any(  # noqa: ASYNC110
            len(listener.channel_items.get("bench", ())) >= 8
            for listener in manager.listeners_by_channel.get("bench", ())
        ):
            await asyncio.sleep(0)
        send_event("bench", "tick", data, json_encode=False)
    return HttpResponse(f"published {n}\n")


# Fan-out (bench/fanout.py): one channel, many subscribers.


async def fanout(request: HttpRequest) -> HttpResponse:
    """The broadcast stream of the channel ``bench`` (no heartbeat)."""
    from sse_response import EventStreamHttpResponse
    from sse_response.broadcast import subscribe

    return EventStreamHttpResponse(
        subscribe("bench"), request=request, heartbeat=None, send_timeout=None
    )


async def fanout_idle(request: HttpRequest) -> HttpResponse:
    """A plain stream that sends nothing: what a subscriber is compared with."""
    from sse_response import EventStreamHttpResponse

    async def idle() -> AsyncIterator[dict[str, str]]:
        await asyncio.Event().wait()
        yield {}

    return EventStreamHttpResponse(
        idle(), request=request, heartbeat=None, send_timeout=None
    )


async def fanout_count(request: HttpRequest) -> HttpResponse:
    """How many streams of this process are subscribed, their start known."""
    from sse_response.broadcast import get_backend

    return HttpResponse(str(get_backend().hub.subscriber_count(started=True)))


async def fanout_open(request: HttpRequest) -> HttpResponse:
    """How many event streams are open in this process."""
    from sse_response import lifetime

    return HttpResponse(str(len(lifetime._open_streams)))


async def fanout_publish(request: HttpRequest) -> HttpResponse:
    """
    Publish ``count`` events to ``bench`` from this process, ``interval``
    seconds apart (0: back to back), each carrying its time of publishing.
    """
    from sse_response.broadcast import apublish

    query = request.GET
    count, interval = int(query["count"]), float(query["interval"])
    first = int(query.get("first", "1"))
    for n in range(first, first + count):
        await apublish("bench", {"data": {"n": n, "at": time.time()}})
        if interval:
            await asyncio.sleep(interval)
    return HttpResponse(f"published {count}\n")


async def eventstream_count(request: HttpRequest) -> HttpResponse:
    """How many django-eventstream listeners the channel ``bench`` has."""
    from django_eventstream.views import get_listener_manager

    listeners = get_listener_manager().listeners_by_channel.get("bench", ())
    return HttpResponse(str(len(listeners)))


# Many channels (bench/channels.py): one channel per subscriber.


async def channel(request: HttpRequest, i: int) -> HttpResponse:
    """The broadcast stream of the channel ``u<i>`` (no heartbeat)."""
    from sse_response import EventStreamHttpResponse
    from sse_response.broadcast import subscribe

    return EventStreamHttpResponse(
        subscribe(f"u{i}"), request=request, heartbeat=None, send_timeout=None
    )


async def channels_publish(request: HttpRequest) -> HttpResponse:
    """
    Publish, from a thread of this process, ``rate`` events a second for
    ``seconds`` to random channels among ``u<first>`` to
    ``u<first + channels - 1>``, each carrying its time of publishing
    (pacing.py); answer with pacing's result, as JSON, once it is done. The
    memory row's publisher: MemoryBackend reaches this process's streams only.
    """
    import json

    import pacing

    from sse_response.broadcast import publish

    query = request.GET

    def one(channel: int, data: dict[str, object]) -> None:
        publish(f"u{channel}", {"data": data})

    result = await asyncio.to_thread(
        pacing.run,
        one,
        int(query["first"]),
        int(query["channels"]),
        float(query["rate"]),
        float(query["seconds"]),
        int(query.get("seed", "1")),
        int(query.get("number", "1")),
    )
    return HttpResponse(json.dumps(result), content_type="application/json")


def eventstream_channel(request: HttpRequest, i: int) -> HttpResponse:
    """django-eventstream's own view, listening on the channel ``u<i>``."""
    from django_eventstream.views import events

    return events(request, channel=f"u{i}")


async def eventstream_listeners(request: HttpRequest) -> HttpResponse:
    """How many django-eventstream listeners there are, over every channel."""
    from django_eventstream.views import get_listener_manager

    manager = get_listener_manager()
    with manager.lock:
        count = sum(len(v) for v in manager.listeners_by_channel.values())
    return HttpResponse(str(count))
