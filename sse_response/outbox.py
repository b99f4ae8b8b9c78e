"""
The hand-off between the pump that runs an event source and the consumer
that sends its bytes.

The pump (a thread for a sync source, a task for an async one) encodes each
message and puts its bytes here; the consumer, a coroutine on an event loop,
takes everything that is ready in one go. That is how events that are ready
together leave as one chunk, while an event that is alone leaves at once, and
how a thread wakes the event loop once per batch rather than once per event.

The outbox holds at most about ``limit`` bytes: past that the pump waits for
the consumer, so a source can never run ahead of a slow client without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["Outbox"]

#: How many bytes may wait before the pump waits for the consumer. Large
#: enough to fill a socket buffer in one send, small enough to be no burden
#: with thousands of streams.
DEFAULT_LIMIT = 64 * 1024


def _resolve(future: asyncio.Future[bool], timed_out: bool = False) -> None:
    if not future.done():
        future.set_result(timed_out)


class Outbox:
    """
    Encoded messages on their way from one pump to one consumer.

    Create it on the consumer's event loop. :meth:`put`, :meth:`finish`,
    :meth:`wait_for_space_blocking` and :meth:`close` may be called from any
    thread; the coroutines belong to the consumer's loop.
    """

    __slots__ = (
        "_chunks",
        "_closed",
        "_drained",
        "_finished",
        "_limit",
        "_lock",
        "_loop",
        "_loop_thread",
        "_ready",
        "_size",
        "_space",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = DEFAULT_LIMIT):
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._limit = limit
        self._lock = threading.Lock()
        #: Made by the first pump thread that waits for space: async pumps,
        #: and most sync ones, never need it (it weighs about 1 KB).
        self._space: threading.Condition | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        #: The pump has put its last chunk.
        self._finished = False
        #: The consumer is gone: the pump should stop.
        self._closed = False
        #: Set while the consumer waits for chunks; its result says whether
        #: the wait timed out.
        self._ready: asyncio.Future[bool] | None = None
        #: Set while an async pump waits for space.
        self._drained: asyncio.Future[bool] | None = None

    @property
    def closed(self) -> bool:
        """Whether the consumer is gone, so the pump should stop."""
        return self._closed

    # The pump's side.

    def put(self, chunk: bytes) -> bool:
        """
        Add ``chunk`` for the consumer to take, and wake it if it waits.

        Return whether the outbox is now full, so the pump should wait for
        space before it goes on.
        """
        with self._lock:
            if self._closed:
                return False
            self._chunks.append(chunk)
            self._size += len(chunk)
            self._wake_consumer()
            return self._size >= self._limit

    def finish(self) -> None:
        """Tell the consumer that nothing more will come."""
        with self._lock:
            self._finished = True
            self._wake_consumer()

    def wait_for_space_blocking(self, timeout: float | None = None) -> bool:
        """
        Block the calling thread until the outbox has room or is closed;
        return False if ``timeout`` seconds passed first.
        """
        with self._lock:
            if self._space is None:
                self._space = threading.Condition(self._lock)
            return self._space.wait_for(
                lambda: self._size < self._limit or self._closed, timeout
            )

    async def wait_for_space(self) -> None:
        """Wait, on the consumer's loop, until the outbox has room or is closed."""
        while True:
            with self._lock:
                if self._size < self._limit or self._closed:
                    return
                drained = self._drained = self._loop.create_future()
            await drained

    # The consumer's side.

    async def take(self, timeout: float | None) -> bytes | None:
        """
        Return all the bytes that are ready, waiting for some if there are none.

        Return ``None`` if ``timeout`` seconds pass with nothing ready, and
        ``b""`` once the pump has finished and everything was taken, or the
        outbox was closed.
        """
        while True:
            with self._lock:
                if self._chunks:
                    chunks = self._chunks
                    self._chunks = []
                    self._size = 0
                    if self._space is not None:
                        self._space.notify_all()
                    if self._drained is not None:
                        _resolve(self._drained)
                        self._drained = None
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if self._finished or self._closed:
                    return b""
                ready = self._ready = self._loop.create_future()
            timer = None
            if timeout is not None:
                timer = self._loop.call_later(timeout, _resolve, ready, True)
            try:
                timed_out = await ready
            finally:
                if timer is not None:
                    timer.cancel()
                with self._lock:
                    self._ready = None
            if timed_out:
                with self._lock:
                    if not (self._chunks or self._finished or self._closed):
                        return None

    def close(self) -> None:
        """Tell the pump to stop and the consumer to end; safe from any thread."""
        with self._lock:
            self._closed = True
            self._chunks.clear()
            self._size = 0
            if self._space is not None:
                self._space.notify_all()
            if self._drained is not None:
                self._resolve_on_loop(self._drained)
                self._drained = None
            self._wake_consumer()

    def _wake_consumer(self) -> None:
        # Called with the lock held.
        if self._ready is not None:
            self._resolve_on_loop(self._ready)
            self._ready = None

    def _resolve_on_loop(self, future: asyncio.Future[bool]) -> None:
        if threading.get_ident() == self._loop_thread:
            _resolve(future)
            return
        # A closed loop has nobody left to wake.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve, future)
