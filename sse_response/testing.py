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
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from sse_response.parsing import EventStreamParser, ServerSentEvent

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
) -> StreamReading:
    """
    Read ``response`` until ``events`` events or ``comments`` comments were
    read, the stream ended, or ``timeout`` seconds passed; then close it.
    With ``events``, exactly that many are kept (if that many came).

    The stream is iterated in a thread of its own, so the timeout holds even
    while the stream waits for its source.
    """
    reader = _Reader(events, comments)
    chunks: queue.Queue[object] = queue.Queue()

    def iterate() -> None:
        try:
            for chunk in response.streaming_content:
                chunks.put(chunk)
        except BaseException as exc:  # handed to the reading thread
            chunks.put(exc)
        chunks.put(_END)

    thread = threading.Thread(
        target=iterate, name="sse_response test reader", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    try:
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
        response.close()
        thread.join(timeout=5.0)


async def aread_stream(
    response: Any,
    *,
    events: int | None = None,
    comments: int | None = None,
    timeout: float = 5.0,
) -> StreamReading:
    """
    The async form of :func:`read_stream`, for ``AsyncClient`` responses and
    for streams served on the running event loop.
    """
    reader = _Reader(events, comments)
    content = response.streaming_content
    iterator: AsyncIterator[bytes] = aiter(content)
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(anext(iterator), remaining)
            except StopAsyncIteration:
                return reader.end()
            except asyncio.TimeoutError:
                break
            if reader.feed(chunk):
                break
        return reader.reading
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        response.close()
