"""
The body of an event stream response: one streaming iterator for every kind
of source, served async under ASGI and sync under WSGI.

Both ways run the same coroutine, :meth:`EventStreamBody._chunks`: it starts
a :class:`~sse_response.pumps.Pump` for the source and sends what the pump
puts in the outbox, or a heartbeat when nothing came for a while.

* Under ASGI, ``async for`` runs it on the server's event loop.
* Under WSGI, ``for`` runs it on an event loop that belongs to this stream
  for its whole life, in the server's thread between one chunk and the next.
  An async generator has to be resumed, and closed, on the loop it started
  on; a loop per call (what ``async_to_sync`` gives) would break it.

The first chunk of every stream is empty: WSGI servers (PEP 3333) and daphne
send the status line and headers with the first chunk, so this is what makes
them go out at once, rather than with the first event or heartbeat, and the
client's ``onopen`` fire. It puts nothing on the wire.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from sse_response import lifetime, shutdown, signals
from sse_response.encoding import HEARTBEAT
from sse_response.outbox import Outbox
from sse_response.pumps import Encoder, Pump
from sse_response.request_thread import release_request_thread

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = ["OPENING", "EmptyBody", "EventStreamBody"]

#: The first chunk of every stream (see above).
OPENING = b""

#: Told of every chunk of events that goes out, with the number of event
#: blocks and of bytes in it (sse_response.metrics sets it); None: nobody.
chunk_observer: Callable[[int, int], None] | None = None

#: The end of an event block: each encoded event has exactly one, and
#: comments and heartbeats have none.
_BLOCK_END = b"\n\n"


def in_event_loop() -> bool:
    """Whether an event loop runs in the calling thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def refuse_in_event_loop(message: str) -> None:
    """
    Raise Django's ``SynchronousOnlyOperation`` with ``message`` when called
    inside a running event loop: the error Django raises for the ORM there,
    for the sync calls that would block the loop.
    """
    if in_event_loop():
        from django.core.exceptions import SynchronousOnlyOperation

        raise SynchronousOnlyOperation(message)


class EventStreamBody:
    """
    The chunks of one event stream, to be iterated once, with ``for`` or
    with ``async for``.

    ``heartbeat`` is how many seconds may pass without a message before a
    comment line is sent (``None`` for never). After ``max_duration``
    seconds, or when :meth:`end` is called, the stream sends
    ``retry: <end_retry_ms>`` and ends. ``send_timeout`` is how long the
    source may wait for a client that takes nothing before it is closed.

    :meth:`close` stops the source and runs its ``finally``; it may be
    called from any thread.
    """

    # Thousands of streams may be open at once: no per-instance dict.
    __slots__ = (
        "_closed",
        "_encode",
        "_end_reason",
        "_end_retry_ms",
        "_loop",
        "_outbox",
        "_started",
        "_sync_chunks",
        "_sync_thread",
        "bytes_sent",
        "end_retry_ms",
        "error",
        "events_sent",
        "heartbeat",
        "last_event_id",
        "max_duration",
        "request",
        "send_timeout",
        "sender",
        "source",
    )

    def __init__(
        self,
        source: object,
        *,
        last_event_id: str | None,
        encode: Encoder,
        heartbeat: float | None = None,
        max_duration: float | None = None,
        end_retry_ms: int = 1000,
        send_timeout: float | None = None,
        request: HttpRequest | None = None,
        sender: Any = None,
    ) -> None:
        self.source = source
        #: For the signals (sse_response.signals): the request, and the
        #: sender (the response's class).
        self.request = request
        self.sender = sender
        self.last_event_id = last_event_id
        self.heartbeat = heartbeat
        self.max_duration = max_duration
        self.end_retry_ms = end_retry_ms
        self.send_timeout = send_timeout
        self._encode = encode
        self._started = False
        self._closed = False
        self._outbox: Outbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Set by end(): the retry hint to end with.
        self._end_retry_ms: int | None = None
        self._sync_chunks: Generator[bytes, None, None] | None = None
        self._sync_thread: int | None = None
        #: Set by end(): why, for stream_finished.
        self._end_reason = signals.SHUTDOWN
        #: What the source raised, once the stream is over (see Pump.error).
        self.error: Exception | None = None
        #: Event blocks and bytes sent so far.
        self.events_sent = 0
        self.bytes_sent = 0

    def __aiter__(self) -> AsyncGenerator[bytes, None]:
        self._start()
        return self._chunks()

    def __iter__(self) -> Generator[bytes, None, None]:
        if in_event_loop():
            raise RuntimeError(
                "An event stream cannot be iterated with a plain 'for' inside a "
                "running event loop; use 'async for'."
            )
        self._start()
        self._sync_thread = threading.get_ident()
        self._sync_chunks = self._chunks_on_own_loop()
        return self._sync_chunks

    def close(self) -> None:
        """Stop the stream and close its source. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            close = getattr(self.source, "close", None)
            if close is not None:
                close()
        elif self._sync_chunks is not None and (
            self._sync_thread == threading.get_ident()
        ):
            # The WSGI server's thread, between two chunks: close right here,
            # so the source's finally has run when this returns.
            self._sync_chunks.close()
        elif self._outbox is not None:
            # Another thread: wake the consumer, which stops the source.
            self._outbox.close()

    def end(self, retry_ms: int | None = None, reason: str = signals.SHUTDOWN) -> bool:
        """
        End the stream with ``retry: <retry_ms>`` (``end_retry_ms`` by
        default); return whether it was still open. ``reason`` is what
        ``stream_finished`` will say (``end_all_streams()``: ``"shutdown"``).
        Safe from any thread and from a signal handler.
        """
        loop = self._loop
        if loop is None or self._closed:
            return False
        try:
            loop.call_soon_threadsafe(self._end_on_loop, retry_ms, reason)
        except RuntimeError:
            return False  # Its loop is closed: the stream is over.
        return True

    def _end_on_loop(self, retry_ms: int | None, reason: str) -> None:
        if self._end_retry_ms is None:
            self._end_retry_ms = self.end_retry_ms if retry_ms is None else retry_ms
            self._end_reason = reason
        if self._outbox is not None:
            self._outbox.close()

    def _start(self) -> None:
        if self._started:
            raise RuntimeError("An event stream can be iterated only once.")
        self._started = True

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        loop = self._loop = asyncio.get_running_loop()
        outbox = self._outbox = Outbox(loop)
        if self._closed:
            # close() ran before the outbox existed, from another thread.
            return
        state = signals.StreamState(self.request)
        pump = Pump(
            self.source,
            self.last_event_id,
            outbox,
            self._encode,
            send_timeout=self.send_timeout,
            label=None if self.request is None else str(self.request.path),
        )
        lifetime.register(self)
        started_at = loop.time()
        #: Why the stream ended, once known (see signals.REASONS).
        reason: str | None = None
        try:
            await signals.send(
                signals.stream_started, self.sender, request=self.request
            )
            shutdown.watch_for_shutdown()
            # The thread Django keeps for this request would idle as long as
            # the stream lasts.
            release_request_thread()
            if lifetime.refusing_new_streams():
                self._end_retry_ms = self.end_retry_ms
            else:
                # The source's task or thread copies the context now, and
                # with it the stream's state (signals.report_end()).
                token = signals.current_stream.set(state)
                try:
                    pump.start()
                finally:
                    signals.current_stream.reset(token)
            heartbeat = self.heartbeat
            deadline = (
                None if self.max_duration is None else loop.time() + self.max_duration
            )
            yield OPENING
            while self._end_retry_ms is None:
                timeout = heartbeat
                if deadline is not None:
                    left = max(deadline - loop.time(), 0.0)
                    timeout = left if timeout is None else min(timeout, left)
                chunk = await outbox.take(timeout)
                if chunk:
                    events = chunk.count(_BLOCK_END)
                    self.events_sent += events
                    self.bytes_sent += len(chunk)
                    observer = chunk_observer
                    if observer is not None:
                        observer(events, len(chunk))
                    yield chunk
                elif chunk is not None:
                    break
                elif deadline is not None and loop.time() >= deadline:
                    self._end_retry_ms = self.end_retry_ms
                    reason = signals.MAX_DURATION
                    break
                else:
                    self.bytes_sent += len(HEARTBEAT)
                    yield HEARTBEAT
            if pump.refused and self._end_retry_ms is None:
                self._end_retry_ms = self.end_retry_ms
                reason = signals.REFUSED
            if self._end_retry_ms is not None:
                if reason is None:
                    reason = self._end_reason
                # A field line on its own: the client applies it at once, and
                # no blank line follows that a lax client could take for an
                # event.
                ending = b"retry: %d\n" % self._end_retry_ms
                self.bytes_sent += len(ending)
                yield ending
        except (GeneratorExit, asyncio.CancelledError):
            # Closed or cancelled while it waited: the client went away (or
            # the server cut the stream).
            if reason is None:
                reason = signals.CLIENT_LEFT
            raise
        except BaseException:
            if reason is None:
                reason = signals.ERROR
            raise
        finally:
            try:
                await pump.stop()
            finally:
                self.error = pump.error
                # Only now: the interpreter's exit waits for this, so that the
                # source's finally has run.
                lifetime.unregister(self)
                await signals.send(
                    signals.stream_finished,
                    self.sender,
                    request=self.request,
                    reason=reason or self._reason_from(pump, state),
                    duration=loop.time() - started_at,
                    events=self.events_sent,
                    bytes_sent=self.bytes_sent,
                )

    def _reason_from(self, pump: Pump, state: signals.StreamState) -> str:
        """Why the stream ended, when the outbox said so (it was finished or closed)."""
        if pump.gave_up:
            return signals.TOO_SLOW
        if pump.error is not None:
            return signals.ERROR
        if self._closed:
            # close() from another thread than the server's.
            return signals.CLIENT_LEFT
        return state.reported_reason or signals.COMPLETED

    def _chunks_on_own_loop(self) -> Generator[bytes, None, None]:
        loop = asyncio.new_event_loop()
        chunks = self._chunks()
        step: asyncio.Future[bytes] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(chunks), loop=loop)
                try:
                    chunk = loop.run_until_complete(step)
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            try:
                if step is not None and not step.done():
                    # An exception broke into the loop while the consumer
                    # waited: gunicorn's sync worker raises SystemExit from
                    # its SIGABRT handler when a request outlasts --timeout.
                    # Cancel that wait, which runs the consumer's finally (so
                    # the source's), rather than leave it suspended, where it
                    # could be neither closed nor collected quietly.
                    step.cancel()
                    loop.run_until_complete(asyncio.wait({step}))
                loop.run_until_complete(chunks.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()


class EmptyBody:
    """The body of a response to ``HEAD``: nothing, either way it is iterated."""

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        return
        yield

    def close(self) -> None:
        pass
