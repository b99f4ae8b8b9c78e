"""
Views of the integration test project.

``/stream/<kind>/`` serves an event stream whose source is of the given kind
(see :data:`SOURCE_KINDS`) and whose behaviour the query string sets:

* ``token``: the name under which the source reports, in the ``SSE_IT_STATE``
  directory, that it started (``<token>.started``) and that its ``finally``
  ran (``<token>.finally``, holding the time and how many events it yielded);
* ``count``: how many events to yield before ending (endless without it);
* ``interval``: seconds to sleep after each event;
* ``hold``: after each of the first ``hold`` events, wait until the test
  creates ``<token>.go<n>`` (or ``<token>.go``) before going on, so the test
  decides when the source "still sleeps";
* ``idle``: after ``idle`` events, wait for ``<token>.go`` (sync sources keep
  yielding every ``interval`` seconds meanwhile, so that they can be closed);
* ``size``: pad each event's data to this many characters;
* ``heartbeat``, ``max_duration``, ``send_timeout``: passed to the response.

Each event has the id ``n`` (counting on from the client's Last-Event-ID),
the type ``tick`` and the data ``n``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from sse_response import IDLE, EventStreamHttpResponse, EventStreamMessage
from tests.integration.tricky import TRICKY_MESSAGES

SOURCE_KINDS = ("sync_iter", "async_iter", "sync_callable", "async_callable")

#: How long a source waits for the test at most, so that none outlives a test.
MAX_WAIT = 30.0
POLL = 0.01


def state_dir() -> Path:
    return Path(os.environ["SSE_IT_STATE"])


def report(token: str, what: str, text: str) -> None:
    """Write ``<token>.<what>`` atomically, so a reader never sees half of it."""
    if not token:
        return
    final = state_dir() / f"{token}.{what}"
    partial = final.with_name(f"{final.name}.{threading.get_ident()}.tmp")
    partial.write_text(text)
    partial.replace(final)


@dataclass(frozen=True)
class Params:
    token: str
    count: int | None
    interval: float
    hold: int
    idle: int | None
    size: int

    @classmethod
    def of(cls, request: HttpRequest) -> Params:
        get = request.GET
        return cls(
            token=get.get("token", ""),
            count=int(get["count"]) if "count" in get else None,
            interval=float(get.get("interval", "0")),
            hold=int(get.get("hold", "0")),
            idle=int(get["idle"]) if "idle" in get else None,
            size=int(get.get("size", "0")),
        )

    def released(self, n: int | None = None) -> bool:
        base = state_dir() / f"{self.token}.go"
        return base.exists() or (
            n is not None and base.with_name(f"{base.name}{n}").exists()
        )

    def message(self, n: int) -> EventStreamMessage:
        data = str(n)
        if self.size > len(data):
            data = data + "." * (self.size - len(data))
        return {"id": str(n), "event": "tick", "data": data}


def _first_id(last_event_id: str | None) -> int:
    return int(last_event_id) + 1 if last_event_id and last_event_id.isdigit() else 1


def sync_events(p: Params, last_event_id: str | None) -> Iterator[EventStreamMessage]:
    report(p.token, "started", f"{time.time()}")
    sent = 0
    try:
        n = _first_id(last_event_id)
        while p.count is None or sent < p.count:
            yield p.message(n)
            sent += 1
            n += 1
            if sent <= p.hold:
                deadline = time.monotonic() + MAX_WAIT
                while not p.released(sent) and time.monotonic() < deadline:
                    time.sleep(POLL)
            if p.idle is not None and sent >= p.idle and p.released():
                return
            if p.interval:
                time.sleep(p.interval)
    finally:
        report(p.token, "finally", f"{time.time()} {sent}")


async def async_events(
    p: Params, last_event_id: str | None
) -> AsyncIterator[EventStreamMessage]:
    report(p.token, "started", f"{time.time()}")
    sent = 0
    try:
        n = _first_id(last_event_id)
        while p.count is None or sent < p.count:
            yield p.message(n)
            sent += 1
            n += 1
            if sent <= p.hold or (p.idle is not None and sent >= p.idle):
                deadline = time.monotonic() + MAX_WAIT
                while not p.released(sent) and time.monotonic() < deadline:  # noqa: ASYNC110 (the test's flag is a file)
                    await asyncio.sleep(POLL)
                if p.idle is not None and sent >= p.idle:
                    return
            if p.interval:
                await asyncio.sleep(p.interval)
    finally:
        report(p.token, "finally", f"{time.time()} {sent}")


def stream(request: HttpRequest, kind: str) -> HttpResponseBase:
    p = Params.of(request)
    source: Any
    if kind == "sync_iter":
        source = sync_events(p, request.headers.get("Last-Event-ID"))
    elif kind == "async_iter":
        source = async_events(p, request.headers.get("Last-Event-ID"))
    elif kind == "sync_callable":

        def source(last_event_id: str | None) -> Iterator[EventStreamMessage]:
            return sync_events(p, last_event_id)

    elif kind == "async_callable":

        async def source(
            last_event_id: str | None,
        ) -> AsyncIterator[EventStreamMessage]:
            await asyncio.sleep(0)
            return async_events(p, last_event_id)

    else:
        return HttpResponse(status=404)
    options: dict[str, Any] = {}
    for name in ("heartbeat", "max_duration", "send_timeout"):
        if name in request.GET:
            value = request.GET[name]
            options[name] = None if value == "none" else float(value)
    return EventStreamHttpResponse(source, request=request, **options)


def tricky(request: HttpRequest) -> HttpResponseBase:
    return EventStreamHttpResponse(TRICKY_MESSAGES, request=request, heartbeat=None)


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


async def slow(request: HttpRequest) -> HttpResponse:
    """A plain response that takes ``seconds`` (at most MAX_WAIT) to come."""
    report(request.GET.get("token", ""), "started", f"{time.time()}")
    await asyncio.sleep(min(float(request.GET.get("seconds", "1")), MAX_WAIT))
    return HttpResponse("slow", content_type="text/plain")


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def status(request: HttpRequest) -> HttpResponse:
    """What the process holds now: threads, file descriptors, memory, tasks."""
    tasks = len(asyncio.all_tasks()) if os.environ.get("SSE_IT_ASGI") else None
    return JsonResponse(
        {
            "pid": os.getpid(),
            "threads": _proc_status("Threads"),
            "pump_threads": sum(
                t.name == "sse_response pump" for t in threading.enumerate()
            ),
            # The server's thread pool (gunicorn's gthread worker, asyncio's
            # default executor) grows up to its size as load asks.
            "pool_threads": sum(
                t.name.startswith("ThreadPoolExecutor") for t in threading.enumerate()
            ),
            "fds": len(os.listdir("/proc/self/fd")),
            "database_fds": _database_fds(),
            "rss_kb": _proc_status("VmRSS"),
            "tasks": tasks,
        }
    )


def _database_fds() -> int:
    """How many files of the sqlite database (SSE_IT_DATABASE) are open."""
    database = os.environ.get("SSE_IT_DATABASE")
    if not database:
        return 0
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        count += target.startswith(database)
    return count


def idle(request: HttpRequest, kind: str) -> HttpResponseBase:
    """
    A stream whose source sends nothing until ``<token>.go`` exists (or
    MAX_WAIT passed), with the default heartbeat: what a client sees of it
    at first is the status line and headers alone.
    """
    p = Params.of(request)
    source: Any
    if kind == "sync":

        def source() -> Iterator[Any]:
            deadline = time.monotonic() + MAX_WAIT
            try:
                while not p.released() and time.monotonic() < deadline:
                    time.sleep(POLL)
                    yield IDLE
            finally:
                report(p.token, "finally", f"{time.time()} 0")

        return EventStreamHttpResponse(source(), request=request)

    async def asource() -> AsyncIterator[Any]:
        deadline = time.monotonic() + MAX_WAIT
        try:
            while not p.released() and time.monotonic() < deadline:  # noqa: ASYNC110 (the test's flag is a file)
                await asyncio.sleep(POLL)
            yield {"data": "released"}
        finally:
            report(p.token, "finally", f"{time.time()} 0")

    return EventStreamHttpResponse(asource(), request=request)


def poll(request: HttpRequest) -> HttpResponseBase:
    """
    The README's polling source: every ``interval`` seconds it queries the
    database (its own connection, in its pump thread) and yields an event for
    what is new, or IDLE, which lets the stream close within one round of
    its client leaving. The first round always has something: ``hello``.
    """
    from django.db import connection

    p = Params.of(request)

    def rows() -> Iterator[Any]:
        sent = 0
        try:
            yield {"data": "hello"}
            deadline = time.monotonic() + MAX_WAIT
            while time.monotonic() < deadline:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT COUNT(*) FROM sqlite_master")
                    (tables,) = cursor.fetchone()
                if tables != 0:
                    sent += 1
                    yield {"data": str(tables)}
                else:
                    yield IDLE
                time.sleep(p.interval)
        finally:
            report(p.token, "finally", f"{time.time()} {sent}")

    return EventStreamHttpResponse(rows(), request=request)


def stuck(request: HttpRequest) -> HttpResponseBase:
    """
    A polling source written without IDLE: it sends ``hello``, then sleeps
    without yielding until ``<token>.go`` exists (or MAX_WAIT passed), so
    it cannot be closed meanwhile (sse_response.lingering reports it).
    """
    p = Params.of(request)

    def rows() -> Iterator[Any]:
        try:
            yield {"data": "hello"}
            deadline = time.monotonic() + MAX_WAIT
            while not p.released() and time.monotonic() < deadline:
                time.sleep(POLL)
        finally:
            report(p.token, "finally", f"{time.time()} 1")

    return EventStreamHttpResponse(rows(), request=request, heartbeat=0.5)


def metrics(request: HttpRequest) -> HttpResponse:
    """
    What Prometheus scrapes: prometheus_client's default registry, or under
    PROMETHEUS_MULTIPROC_DIR every process's figures together.
    """
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )

    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# Broadcast (docs/broadcast.md): the stream of channels, and publishing.


def broadcast(request: HttpRequest) -> HttpResponseBase:
    """
    ``/broadcast/?channel=a&channel=b``: the stream of those channels
    (``heartbeat`` in the query string as for the other streams).
    """
    from sse_response.broadcast import subscribe

    heartbeat = float(request.GET.get("heartbeat", "5"))
    # ``presence``: the stream's presence info, as JSON (test_presence_processes.py).
    info = request.GET.get("presence")
    return EventStreamHttpResponse(
        subscribe(
            *request.GET.getlist("channel"),
            presence=None if info is None else json.loads(info),
        ),
        request=request,
        heartbeat=heartbeat,
    )


def broadcast_publish(request: HttpRequest) -> HttpResponse:
    """``/broadcast/publish/?channel=a&n=1``: publish ``{"n": n}`` from a sync view."""
    from sse_response.broadcast import publish

    event_id = publish(request.GET["channel"], {"data": {"n": int(request.GET["n"])}})
    return HttpResponse(event_id)


async def broadcast_apublish(request: HttpRequest) -> HttpResponse:
    """``/broadcast/apublish/?channel=a&n=1``: the same from an async view."""
    from sse_response.broadcast import apublish

    event_id = await apublish(
        request.GET["channel"], {"data": {"n": int(request.GET["n"])}}
    )
    return HttpResponse(event_id)
