"""
The demo's pages and the event streams that feed them.

Each page is plain HTML whose script opens an ``EventSource`` on a stream:

* ``/progress/``: a long task reports its progress from a sync generator;
* ``/ticker/``: live prices from an async generator;
* ``/counter/``: a counter whose state lives in the event ids, so that it
  goes on where it was when the server restarts;
* ``/shared/``: a counter every tab of the browser reads through one
  connection, with ``SharedEventSource`` (sse_response's static file).
* ``/broadcast/``: a message posted in one window appears in every open
  window (``sse_response.broadcast``).
* ``/figures/``: the streams open now and how those that ended ended, live,
  from the signals of ``sse_response.signals``; ``/metrics/`` gives the
  Prometheus metrics when prometheus_client is installed.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from demo import figures
from demo.serving import describe, heartbeat
from sse_response import EventStreamHttpResponse, EventStreamMessage


def _number(
    request: HttpRequest, name: str, default: float, low: float, high: float
) -> float:
    """A number from the query string, within [low, high]."""
    try:
        value = float(request.GET.get(name, default))
    except ValueError:
        return default
    if value != value:  # NaN
        return default
    return min(max(value, low), high)


def _page(request: HttpRequest, template: str, **context: Any) -> HttpResponse:
    return render(
        request, f"demo/{template}", {"serving": describe(request), **context}
    )


def index(request: HttpRequest) -> HttpResponse:
    return _page(request, "index.html")


# 1. A long task and its progress bar: a sync generator.
#
# A sync view and a sync generator, as most Django code is written.
# sse_response runs the generator in a thread of its own, under WSGI and
# ASGI alike, and each step reaches the browser as soon as it is yielded.


def progress_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "progress.html")


def progress_stream(request: HttpRequest) -> EventStreamHttpResponse:
    steps = int(_number(request, "steps", 20, 1, 1000))
    delay = _number(request, "delay", 0.25, 0, 10)

    def run_task(last_event_id: str | None) -> Iterator[EventStreamMessage]:
        # Each step's id is its number: a client that reconnects in the
        # middle of the task gets the steps it has not seen yet.
        done = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        yield {"retry_ms": 1000, "comment": f"task of {steps} steps"}
        for step in range(done + 1, steps + 1):
            time.sleep(delay)  # the work of one step
            yield {
                "id": str(step),
                "event": "progress",
                "data": {
                    "step": step,
                    "steps": steps,
                    "percent": round(100 * step / steps),
                },
            }
        # The stream then ends; the page closes its EventSource on "done",
        # else the browser would reconnect and be told "done" again.
        yield {"event": "done", "data": {"steps": steps}}

    return EventStreamHttpResponse(run_task, request=request, heartbeat=heartbeat())


# 2. A live ticker: an async generator.
#
# Nothing to resume here, a ticker only cares about now: the events carry
# no id, and a reconnected page simply gets the next prices.

_SYMBOLS = {"ACME": 132.50, "GLOBEX": 48.20, "INITECH": 12.75, "HOOLI": 301.10}


def ticker_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "ticker.html", symbols=list(_SYMBOLS))


async def ticker_stream(request: HttpRequest) -> EventStreamHttpResponse:
    interval = _number(request, "interval", 1.0, 0.05, 60)

    async def quotes() -> AsyncIterator[EventStreamMessage]:
        prices = dict(_SYMBOLS)
        rng = random.Random()
        while True:
            changes = {}
            for symbol, price in prices.items():
                new = max(0.01, round(price * (1 + rng.gauss(0, 0.004)), 2))
                changes[symbol] = round(new - price, 2)
                prices[symbol] = new
            now = datetime.datetime.now(datetime.timezone.utc)
            yield {
                "event": "quotes",
                "data": {
                    "time": now.isoformat(timespec="milliseconds"),
                    "quotes": [
                        {"symbol": s, "price": p, "change": changes[s]}
                        for s, p in prices.items()
                    ],
                },
            }
            await asyncio.sleep(interval)

    return EventStreamHttpResponse(quotes(), request=request, heartbeat=heartbeat())


# 3. A resumable counter: the state is in the event ids.
#
# Each event's id is the counter's value. When the connection drops (the
# server stopped, the network went away) the browser reconnects on its own
# and sends the last id it saw as Last-Event-ID; the stream goes on from the
# next value. No database: the client holds the state, so a restarted server
# sends every value once, with no gap and no duplicate.


def counter_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "counter.html")


async def counter_stream(request: HttpRequest) -> EventStreamHttpResponse:
    interval = _number(request, "interval", 1.0, 0.05, 60)

    async def count_from(
        last_event_id: str | None,
    ) -> AsyncIterator[EventStreamMessage]:
        if last_event_id is not None and last_event_id.isdigit():
            n = int(last_event_id)
        else:
            n = 0  # a first connection, or an id that is not ours
        # No id on this one: the browser keeps the last id it saw. The short
        # retry makes it reconnect half a second after the connection drops.
        yield {
            "event": "hello",
            "data": {"last_event_id": last_event_id, "next": n + 1},
            "retry_ms": 500,
        }
        while True:
            await asyncio.sleep(interval)
            n += 1
            yield {"id": str(n), "event": "count", "data": n}

    # When the server ends the stream (it stops, or reloads), the same short
    # reconnection time.
    return EventStreamHttpResponse(
        count_from, request=request, heartbeat=heartbeat(), end_retry_ms=500
    )


# 4. One connection for every tab: SharedEventSource.
#
# On HTTP/1.1 a browser holds at most 6 connections to a site, for all its
# tabs together, and each open stream keeps one. The page loads
# sse_response/shared-event-source.js: all its tabs share one connection to
# this stream. Each event says how many of these streams this process holds,
# so the page shows that ten tabs cost the server one connection.

_shared_streams = 0
_shared_streams_lock = threading.Lock()


def _count_shared_streams(change: int) -> int:
    global _shared_streams
    with _shared_streams_lock:
        _shared_streams += change
        return _shared_streams


def shared_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "shared.html")


async def shared_stream(request: HttpRequest) -> EventStreamHttpResponse:
    interval = _number(request, "interval", 1.0, 0.05, 60)

    async def count_from(
        last_event_id: str | None,
    ) -> AsyncIterator[EventStreamMessage]:
        n = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        connections = _count_shared_streams(+1)
        try:
            yield {"retry_ms": 500, "comment": "shared by the tabs of this browser"}
            while True:
                n += 1
                yield {
                    "id": str(n),
                    "event": "count",
                    "data": {"n": n, "connections": connections},
                }
                await asyncio.sleep(interval)
                connections = _count_shared_streams(0)
        finally:
            _count_shared_streams(-1)

    return EventStreamHttpResponse(count_from, request=request, heartbeat=heartbeat())


# 4. Broadcast: a message posted in one window appears in every open window.
#
# The POST view publishes to a channel; each page's stream subscribed to it.
# Under `make demo` the history lives in the process (MemoryBackend); with
# SSE_DEMO_REDIS set, in Redis, so that every worker of a gunicorn with
# several processes sends every message (see demo/settings.py).

BROADCAST_CHANNEL = "demo-board"


def broadcast_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "broadcast.html", channel=BROADCAST_CHANNEL)


def broadcast_stream(request: HttpRequest) -> EventStreamHttpResponse:
    from sse_response.broadcast import subscribe

    # Each window is present on the channel while its stream is open; its
    # arrival and departure are announced there (presence-join and
    # presence-leave), and the page then asks how many windows are here.
    window = request.GET.get("window", "")[:16]
    return EventStreamHttpResponse(
        subscribe(BROADCAST_CHANNEL, presence={"window": window}, announce=True),
        request=request,
        heartbeat=heartbeat(),
    )


async def broadcast_presence(request: HttpRequest) -> JsonResponse:
    """How many windows listen, in every process, and who they are."""
    from sse_response.broadcast import apresence, apresence_count

    return JsonResponse(
        {
            "count": await apresence_count(BROADCAST_CHANNEL),
            "windows": [info["window"] for info in await apresence(BROADCAST_CHANNEL)],
        }
    )


def broadcast_post(request: HttpRequest) -> HttpResponse:
    """Publish the posted ``text`` (a sync view: publish() returns once stored)."""
    from sse_response.broadcast import publish

    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    text = request.POST.get("text", "").strip()[:500]
    if not text:
        return HttpResponse("Nothing to post.", status=400)
    event_id = publish(
        BROADCAST_CHANNEL,
        {
            "event": "post",
            "data": {
                "text": text,
                "author": request.POST.get("author", "")[:40],
                "pid": os.getpid(),
            },
        },
    )
    return HttpResponse(event_id, status=201)


# 5. Live figures: the signals of every stream's start and end, and the
# Prometheus metrics.


def figures_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "figures.html", metrics=_prometheus_installed())


async def figures_stream(request: HttpRequest) -> EventStreamHttpResponse:
    """The figures every half second (this page's own stream counts too)."""

    async def every_half_second() -> AsyncIterator[EventStreamMessage]:
        while True:
            yield {"event": "figures", "data": figures.snapshot()}
            await asyncio.sleep(0.5)

    return EventStreamHttpResponse(
        every_half_second(), request=request, heartbeat=heartbeat()
    )


def _prometheus_installed() -> bool:
    from sse_response import metrics

    return metrics.enabled()


def metrics_view(request: HttpRequest) -> HttpResponse:
    """What Prometheus scrapes (keep such a view private in production)."""
    if not _prometheus_installed():
        return HttpResponse(
            "prometheus_client is not installed: pip install "
            "'sse_response[prometheus]'.",
            status=404,
            content_type="text/plain",
        )
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
