"""
Helpers to test event stream views.

:func:`read_stream` and :func:`aread_stream` read a streaming response, one
returned by Django's test ``Client`` or ``AsyncClient`` or built directly, the
way a browser would: until enough events (or comments) arrived, the stream
ended, or the time ran out, which makes endless streams testable. Then they
close the response, which closes the stream's source.

    def test_ticks(client):
        response = client.get("/ticks/")
        reading = read_stream(response, events=3, timeout=5)
        assert [event.data for event in reading.events] == ["1", "2", "3"]

While they read, the stream's source uses the test's database connections,
whatever thread it runs in, so it sees the rows of a ``TestCase`` (or of a
``django_db`` test) and its open transaction, as the threads of
``LiveServerTestCase`` do. An exception in the source is raised in the test,
as Django's test client raises a view's.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async

from sse_response.body import EventStreamBody, in_event_loop
from sse_response.parsing import EventStreamParser, ServerSentEvent
from sse_response.pumps import shared_connections

__all__ = [
    "EventStreamParser",
    "ServerSentEvent",
    "StreamReading",
    "aread_stream",
    "parse",
    "read_stream",
]


def parse(stream: bytes | Iterable[bytes]) -> list[ServerSentEvent]:
    """Return the events a client reads from the whole of ``stream``."""
    parser = EventStreamParser()
    chunks = [stream] if isinstance(stream, bytes) else stream
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    parser.close()
    return events


@dataclass
class StreamReading:
    """What a client saw of a stream."""

    events: list[ServerSentEvent] = field(default_factory=list)
    #: The text of each comment line (heartbeats are empty comments).
    comments: list[str] = field(default_factory=list)
    #: The reconnection time the stream set, in milliseconds.
    retry: int | None = None
    #: What the client would send as ``Last-Event-ID`` on reconnection.
    last_event_id: str = ""
    #: Whether the server ended the stream (rather than the reader stopping).
    ended: bool = False
    #: The bytes as they came, one item per chunk.
    chunks: list[bytes] = field(default_factory=list)


class _Reader:
    def __init__(self, events: int | None, comments: int | None) -> None:
        self.parser = EventStreamParser()
        self.reading = StreamReading(comments=self.parser.comments)
        self.events = events
        self.comments = comments

    def feed(self, chunk: bytes) -> bool:
        """Read a chunk; return whether enough was read."""
        reading = self.reading
        reading.chunks.append(chunk)
        reading.events.extend(self.parser.feed(chunk))
        reading.retry = self.parser.retry
        reading.last_event_id = self.parser.last_event_id
        if self.events is not None and len(reading.events) >= self.events:
            # Events that were ready together arrive in one chunk: keep
            # exactly the number asked for, as if the reader stopped there.
            del reading.events[self.events :]
            if reading.events:
                reading.last_event_id = reading.events[-1].last_event_id
            return True
        return self.comments is not None and len(reading.comments) >= self.comments

    def end(self) -> StreamReading:
        self.reading.ended = True
        self.parser.close()
        return self.reading


_END = object()


def read_stream(
    response: Any,
    *,
    events: int | None = None,
    comments: int | None = None,
    timeout: float = 5.0,
    raise_source_exception: bool = True,
) -> StreamReading:
    """
    Read ``response`` until ``events`` events or ``comments`` comments were
    read, the stream ended, or ``timeout`` seconds passed; then close it.
    With ``events``, exactly that many are kept (if that many came).

    The source uses the test's database connections: an event stream runs on
    an event loop of its own while this thread waits, and serves the
    source's ``sync_to_async()`` calls (the async ORM's among them), as
    ``async_to_sync()`` does; a sync source's thread is given this thread's
    connections. If the source raised (or yielded a message that cannot be
    encoded), that exception is raised here, unless
    ``raise_source_exception`` is false. A response that is not a stream
    fails an assertion that shows its status (and where a redirect goes).
    """
    _check_is_a_stream(response)
    reader = _Reader(events, comments)
    body = _own_body(response)
    # async_to_sync() cannot run inside a running loop (a sync helper called
    # from async code): the thread that reads then is the fallback's.
    if body is not None and not in_event_loop():
        reading = async_to_sync(_aread)(response, body, reader, timeout)
    else:
        reading = _read_in_a_thread(response, reader, timeout)
    if raise_source_exception:
        _raise_source_exception(response)
    return reading


async def aread_stream(
    response: Any,
    *,
    events: int | None = None,
    comments: int | None = None,
    timeout: float = 5.0,
    raise_source_exception: bool = True,
) -> StreamReading:
    """
    The async form of :func:`read_stream`, for ``AsyncClient`` responses and
    for streams served on the running event loop.
    """
    _check_is_a_stream(response)
    reader = _Reader(events, comments)
    reading = await _aread(response, response.streaming_content, reader, timeout)
    if raise_source_exception:
        _raise_source_exception(response)
    return reading


#: The names of the wrappers Django's test clients put around a streaming
#: response's content, to close it when it is exhausted.
_TEST_CLIENT_WRAPPERS = frozenset(
    {"closing_iterator_wrapper", "aclosing_iterator_wrapper"}
)


def _own_body(response: Any) -> EventStreamBody | None:
    """
    The stream's own body, which can be read with ``async for``, unless
    something other than Django's test client wrapped the content (which is
    then read as it is).
    """
    body = getattr(response, "_event_stream_body", None)
    if not isinstance(body, EventStreamBody):
        return None
    # StreamingHttpResponse keeps what it was given, iterated, in _iterator.
    content = getattr(response, "_iterator", None)
    if content is body or getattr(content, "__name__", None) in _TEST_CLIENT_WRAPPERS:
        return body
    return None


async def _aread(
    response: Any, content: Any, reader: _Reader, timeout: float
) -> StreamReading:
    # Collected where this test's sync code runs: the test's own thread under
    # read_stream(), and in a TestCase's async test, which Django runs under
    # async_to_sync().
    connections = await sync_to_async(_share_test_connections)()
    sharing = shared_connections.set(connections)
    iterator: AsyncIterator[bytes] | None = None
    try:
        iterator = aiter(content)
        return await _read_chunks(reader, iterator, timeout)
    finally:
        try:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            _close_leaving_connections_alone(response)
        finally:
            shared_connections.reset(sharing)
            _stop_sharing(connections)


async def _read_chunks(
    reader: _Reader, iterator: AsyncIterator[bytes], timeout: float
) -> StreamReading:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            chunk = await asyncio.wait_for(anext(iterator), remaining)
        except StopAsyncIteration:
            return reader.end()
        except asyncio.TimeoutError:
            break
        if chunk and reader.feed(chunk):
            break
    return reader.reading


def _read_in_a_thread(response: Any, reader: _Reader, timeout: float) -> StreamReading:
    """
    Read a streaming response that is not an event stream's own body, in a
    thread, so that the timeout holds even while it waits.
    """
    chunks: queue.Queue[object] = queue.Queue()
    connections = _share_test_connections()

    def iterate() -> None:
        shared_connections.set(connections)
        try:
            for chunk in response.streaming_content:
                if chunk:
                    chunks.put(chunk)
        except BaseException as exc:  # handed to the reading thread
            chunks.put(exc)
        chunks.put(_END)

    thread = threading.Thread(
        target=iterate, name="sse_response test reader", daemon=True
    )
    try:
        thread.start()
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = chunks.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _END:
                return reader.end()
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            if reader.feed(item):
                break
        return reader.reading
    finally:
        try:
            _close_leaving_connections_alone(response)
            thread.join(timeout=5.0)
        finally:
            _stop_sharing(connections)


def _check_is_a_stream(response: Any) -> None:
    if getattr(response, "streaming", False):
        return
    status = getattr(response, "status_code", "?")
    what = f"{status} {getattr(response, 'reason_phrase', '')}".strip()
    location = response.get("Location") if hasattr(response, "get") else None
    if location:
        what += f", redirecting to {location}"
    content_type = response.get("Content-Type") if hasattr(response, "get") else None
    if content_type:
        what += f", Content-Type {content_type}"
    raise AssertionError(f"Expected an event stream response, got {what}.")


def _raise_source_exception(response: Any) -> None:
    body = getattr(response, "_event_stream_body", None)
    error = getattr(body, "error", None)
    if error is not None:
        raise error


def _close_leaving_connections_alone(response: Any) -> None:
    """
    Close ``response`` as Django's test client closes one: without letting
    its ``request_finished`` signal close the test's database connections.
    """
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def _share_test_connections() -> dict[str, Any]:
    """
    The database connections this thread has opened (those of the test),
    made usable from the threads that run a stream until
    :func:`_stop_sharing`.
    """
    from django.db import connections

    shared = {}
    for connection in connections.all(initialized_only=True):
        connection.inc_thread_sharing()
        shared[connection.alias] = connection
    return shared


def _stop_sharing(shared: Mapping[str, Any]) -> None:
    for connection in shared.values():
        connection.dec_thread_sharing()
