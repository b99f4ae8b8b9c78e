"""
What the core tests share: event sources whose progress a test controls and
observes, and two drivers that serve a request through Django's real
ASGIHandler and WSGIHandler and read the response as a client would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test.client import RequestFactory

from sse_response import EventStreamMessage
from sse_response.parsing import EventStreamParser, ServerSentEvent

#: How long any single wait in a test may last before it counts as a failure.
WAIT = 5.0

#: In a script, a step that blocks the source until the test opens its gate.
GATE = object()

Step = EventStreamMessage | None | object
Script = Callable[[str | None], Iterable[Step]]

#: The kinds of event source the library accepts.
SOURCE_KINDS = ["sync_iterator", "async_iterator", "sync_callable", "async_callable"]


class Probe:
    """What a test sees of its source, and the gate it holds it back with."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()
        self.called_with: list[str | None] = []
        self.yielded = 0
        self.thread_names: set[str] = set()

    def release(self) -> None:
        self.gate.set()


def _record_thread(probe: Probe) -> None:
    probe.thread_names.add(threading.current_thread().name)


def sync_messages(steps: Iterable[Step], probe: Probe) -> Iterator[Any]:
    probe.started.set()
    try:
        for step in steps:
            _record_thread(probe)
            if step is GATE:
                probe.gate.wait(WAIT * 2)
                continue
            probe.yielded += 1
            yield step
    finally:
        probe.finished.set()


async def async_messages(
    steps: Iterable[Step], probe: Probe
) -> AsyncGenerator[Any, None]:
    probe.started.set()
    try:
        for step in steps:
            _record_thread(probe)
            if step is GATE:
                await asyncio.to_thread(probe.gate.wait, WAIT * 2)
                continue
            probe.yielded += 1
            yield step
    finally:
        probe.finished.set()


def make_source(kind: str, script: Script, probe: Probe) -> Any:
    """Build a source of ``kind`` that plays ``script``."""
    if kind == "sync_iterator":
        return sync_messages(script(None), probe)
    if kind == "async_iterator":
        return async_messages(script(None), probe)
    if kind == "sync_callable":

        def sync_callable(last_event_id: str | None) -> Iterator[Any]:
            probe.called_with.append(last_event_id)
            return sync_messages(script(last_event_id), probe)

        return sync_callable
    if kind == "async_callable":

        async def async_callable(last_event_id: str | None) -> AsyncIterator[Any]:
            probe.called_with.append(last_event_id)
            messages = async_messages(script(last_event_id), probe)
            try:
                async for message in messages:
                    yield message
            finally:
                # "async for" leaves the inner generator open; close it here,
                # on this generator's own cancellation or close.
                await messages.aclose()

        return async_callable
    raise ValueError(kind)


@dataclass
class Reading:
    """Everything a client has read of a response so far."""

    parser: EventStreamParser = field(default_factory=EventStreamParser)
    events: list[ServerSentEvent] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    ended: bool = False

    @property
    def comments(self) -> list[str]:
        return self.parser.comments

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def feed(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.events.extend(self.parser.feed(chunk))


class Call:
    """A request in flight, read as a client reads it."""

    status: int
    headers: list[tuple[str, str]]
    reading: Reading

    async def _next(self) -> None:
        """Read the next chunk of the response, or notice its end."""
        raise NotImplementedError

    async def read(
        self, *, events: int | None = None, comments: int | None = None
    ) -> Reading:
        reading = self.reading
        while not reading.ended and not (
            (events is not None and len(reading.events) >= events)
            or (comments is not None and len(reading.comments) >= comments)
        ):
            await self._next()
        return reading

    async def read_to_end(self) -> Reading:
        while not self.reading.ended:
            await self._next()
        return self.reading

    async def disconnect(self) -> None:
        raise NotImplementedError


def _headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


class AsgiCall(Call):
    """A request served by Django's ASGIHandler on the running loop."""

    status: int
    headers: list[tuple[str, str]]

    def __init__(self) -> None:
        self.reading = Reading()
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
    ) -> AsgiCall:
        call = cls()
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"testserver"), *_headers(headers or {})],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        call._to_app.put_nowait(
            {"type": "http.request", "body": b"", "more_body": False}
        )

        async def send(message: Mapping[str, Any]) -> None:
            await call._from_app.put(dict(message))

        call.task = asyncio.create_task(ASGIHandler()(scope, call._to_app.get, send))
        start = await asyncio.wait_for(call._from_app.get(), WAIT)
        assert start["type"] == "http.response.start", start
        call.status = start["status"]
        call.headers = [
            (name.decode(), value.decode()) for name, value in start["headers"]
        ]
        return call

    async def _next(self) -> None:
        message = await asyncio.wait_for(self._from_app.get(), WAIT)
        assert message["type"] == "http.response.body", message
        if message.get("body"):
            self.reading.feed(message["body"])
        if not message.get("more_body", False):
            self.reading.ended = True

    async def read_to_end(self) -> Reading:
        reading = await super().read_to_end()
        assert self.task is not None
        await asyncio.wait_for(self.task, WAIT)
        return reading

    async def disconnect(self) -> None:
        """Tell the app the client went away, as an ASGI server does."""
        self._to_app.put_nowait({"type": "http.disconnect"})
        assert self.task is not None
        await asyncio.wait_for(self.task, WAIT)


_END = object()


class WsgiCall(Call):
    """
    A request served by Django's WSGIHandler in a thread that behaves like a
    WSGI server's: it iterates the response, and once the client is gone it
    stops at the next chunk and calls ``close()``.
    """

    status: int
    headers: list[tuple[str, str]]

    def __init__(self) -> None:
        self.reading = Reading()
        self._chunks: asyncio.Queue[object] = asyncio.Queue()
        self._client_gone = threading.Event()
        self._closed = threading.Event()
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def start(
        cls, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
    ) -> WsgiCall:
        call = cls()
        started: asyncio.Future[tuple[str, list[tuple[str, str]]]] = (
            call._loop.create_future()
        )
        environ = RequestFactory().generic(method, path, headers=headers).environ

        def serve() -> None:
            def start_response(status: str, headers: list[tuple[str, str]]) -> None:
                call._loop.call_soon_threadsafe(started.set_result, (status, headers))

            result = WSGIHandler()(environ, start_response)
            try:
                for chunk in result:
                    call._loop.call_soon_threadsafe(call._chunks.put_nowait, chunk)
                    if call._client_gone.is_set():
                        break
            finally:
                result.close()
                call._closed.set()
                call._loop.call_soon_threadsafe(call._chunks.put_nowait, _END)

        threading.Thread(target=serve, name="wsgi server", daemon=True).start()
        status, headers_ = await asyncio.wait_for(started, WAIT)
        call.status = int(status.split()[0])
        call.headers = headers_
        return call

    async def _next(self) -> None:
        item = await asyncio.wait_for(self._chunks.get(), WAIT)
        if item is _END:
            self.reading.ended = True
        else:
            assert isinstance(item, bytes)
            self.reading.feed(item)

    async def disconnect(self) -> None:
        """The client goes away: the server closes the response at its next write."""
        self._client_gone.set()
        await wait_for_event(self._closed)
        assert self._closed.is_set(), "the WSGI server never closed the response"


PROTOCOLS: dict[str, Callable[..., Any]] = {
    "asgi": AsgiCall.start,
    "wsgi": WsgiCall.start,
}


async def wait_for_event(event: threading.Event, timeout: float = WAIT) -> bool:
    """Wait for a thread's event without blocking the loop."""
    return await asyncio.to_thread(event.wait, timeout)
