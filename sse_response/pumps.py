"""
Running an event source and feeding its encoded messages to an outbox.

A sync source runs in a thread of its own for the life of the stream, so a
source that blocks (on a queue, a socket, ``time.sleep``) never blocks an
event loop, never occupies Django's thread-sensitive executor, and never
waits for a shared pool. An async source runs in a task on the consumer's
event loop. Either way the pump encodes each message as it comes and puts it
in the outbox; the consumer sends whatever is there.

A callable source is called when the stream starts, with the client's last
event id: an async callable on the loop, a sync one in the pump thread (it
may block too). What it returns decides how its messages are run, so a sync
function returning an async generator works, and so does the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction

from sse_response.encoding import InvalidMessageError
from sse_response.messages import IDLE
from sse_response.outbox import Outbox

__all__ = ["Pump", "is_async_callable", "shared_connections"]

logger = logging.getLogger("sse_response")

Encoder = Callable[[Mapping[str, Any] | None], bytes]

#: How many sync sources may run at once in a process, unless the setting
#: ``SSE_RESPONSE_MAX_SYNC_STREAMS`` says otherwise. Each holds a thread.
DEFAULT_MAX_SYNC_STREAMS = 1000

#: The outboxes of the sync sources running now, one per pump thread.
_sync_outboxes: set[Outbox] = set()
_sync_outboxes_changed = threading.Condition()

#: How long stopping waits for a sync source to reach its next ``yield`` so
#: that its ``finally`` runs before the response is done. A source blocked
#: for longer is closed by its thread when it yields, after the response.
SYNC_STOP_GRACE = 1.0

#: The database connections, by alias, that a pump thread uses instead of
#: opening its own; None (always, outside tests) to open its own. Set by
#: sse_response.testing while a test reads a stream, so that the source sees
#: the test's transaction, as LiveServerTestCase's threads share its
#: connections.
shared_connections: contextvars.ContextVar[Mapping[str, Any] | None] = (
    contextvars.ContextVar("sse_response.shared_connections", default=None)
)


def is_async_callable(source: object) -> bool:
    """Whether calling ``source`` gives an awaitable or an async iterator."""
    return iscoroutinefunction(source) or inspect.isasyncgenfunction(source)


def _is_async_result(result: object) -> bool:
    return inspect.isawaitable(result) or hasattr(result, "__aiter__")


class Pump:
    """
    Run one event source for one stream, putting its encoded messages in
    ``outbox`` until the source ends, fails, or :meth:`stop` is called.

    Create and start it on the consumer's event loop.
    """

    __slots__ = (
        "_encode",
        "_label",
        "_last_event_id",
        "_loop",
        "_outbox",
        "_send_timeout",
        "_source",
        "_task",
        "_thread",
        "_thread_done",
        "error",
        "gave_up",
        "refused",
    )

    def __init__(
        self,
        source: object,
        last_event_id: str | None,
        outbox: Outbox,
        encode: Encoder,
        *,
        send_timeout: float | None = None,
        label: str | None = None,
    ) -> None:
        self._source = source
        #: How log messages name the stream (its request's path).
        self._label = label
        self._last_event_id = last_event_id
        self._outbox = outbox
        self._encode = encode
        self._send_timeout = send_timeout
        #: Whether the source was refused a thread (see max_sync_streams()).
        self.refused = False
        #: Whether the source was closed because its client took nothing
        #: for send_timeout seconds.
        self.gave_up = False
        #: What the source raised (or the message it yielded that could not
        #: be encoded), if it failed.
        self.error: Exception | None = None
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread_done: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start running the source, in a task or a thread as it needs."""
        source = self._source
        is_callable = callable(source)
        if (is_callable and is_async_callable(source)) or (
            not is_callable and hasattr(source, "__aiter__")
        ):
            self._start_task(source, is_callable)
        else:
            self._start_thread(source, is_callable)

    async def stop(self) -> None:
        """
        Stop the source and close it, so that its ``finally`` runs.

        An async source is cancelled and closed at once. A sync source is
        closed by its thread when it next yields; this waits up to
        ``SYNC_STOP_GRACE`` seconds for that.
        """
        self._outbox.close()
        # asyncio.wait() neither raises the task's CancelledError here nor
        # cancels what it waits for when it times out.
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._thread_done is not None and not self._thread_done.done():
            stopped_at = time.monotonic()
            await asyncio.wait({self._thread_done}, timeout=SYNC_STOP_GRACE)
            thread = self._thread
            if thread is not None and thread.is_alive():
                # Still blocked in the source, which has not yielded since:
                # make it seen if it stays so (see sse_response.lingering).
                from sse_response import lingering

                lingering.watch(thread, self._label or repr(self._source), stopped_at)

    # Async sources: a task on the consumer's loop.

    def _start_task(self, source: object, call: bool) -> None:
        if self._outbox.closed:
            return  # Stopped while a sync callable was still being called.
        self._task = self._loop.create_task(self._run_async(source, call))

    async def _run_async(self, source: Any, call: bool) -> None:
        outbox, encode = self._outbox, self._encode
        messages: Any = None
        iterator: Any = None
        handed_off = False
        try:
            messages = source(self._last_event_id) if call else source
            if inspect.isawaitable(messages):
                messages = await messages
            if not hasattr(messages, "__aiter__"):
                self._start_thread(_checked_iterable(messages), call=False)
                handed_off = True
                return
            iterator = aiter(messages)
            position = -1
            async for message in iterator:
                position += 1
                if message is IDLE:
                    if outbox.closed:
                        break
                    continue
                if outbox.put(_encoded(encode, message, position)):
                    try:
                        await asyncio.wait_for(
                            outbox.wait_for_space(), self._send_timeout
                        )
                    except asyncio.TimeoutError:
                        self._give_up_on_client()
                if outbox.closed:
                    break
        except Exception as exc:
            self._failed(exc)
        finally:
            if not handed_off:
                outbox.finish()
                await _aclose(iterator, messages)

    # Sync sources: a thread of their own.

    def _failed(self, exc: Exception) -> None:
        self.error = exc
        logger.error(
            "The event stream source %r failed; ending the stream.",
            self._source,
            exc_info=exc,
        )

    def _give_up_on_client(self) -> None:
        self.gave_up = True
        logger.warning(
            "The client of an event stream took nothing for %s seconds; "
            "closing the source %r.",
            self._send_timeout,
            self._source,
        )
        self._outbox.close()

    def _start_thread(self, source: object, call: bool) -> None:
        limit = max_sync_streams()
        with _sync_outboxes_changed:
            refused = len(_sync_outboxes) >= limit
            if not refused:
                _sync_outboxes.add(self._outbox)
        if refused:
            logger.warning(
                "%d sync event streams are open (SSE_RESPONSE_MAX_SYNC_STREAMS); "
                "refusing another, whose client will retry.",
                limit,
            )
            self.refused = True
            self._outbox.finish()
            return
        self._thread_done = self._loop.create_future()
        context = contextvars.copy_context()
        thread = self._thread = threading.Thread(
            target=context.run,
            args=(self._run_sync, source, call, self._thread_done),
            name="sse_response pump",
            daemon=True,
        )
        thread.start()

    def _run_sync(self, source: Any, call: bool, done: asyncio.Future[None]) -> None:
        outbox, encode = self._outbox, self._encode
        messages: Any = None
        iterator: Any = None
        handed_off = False
        shared = _use_shared_connections()
        try:
            messages = source(self._last_event_id) if call else source
            if _is_async_result(messages):
                self._loop.call_soon_threadsafe(self._start_task, messages, False)
                handed_off = True
                return
            iterator = iter(_checked_iterable(messages))
            for position, message in enumerate(iterator):
                if message is IDLE:
                    if outbox.closed:
                        break
                    continue
                if outbox.put(
                    _encoded(encode, message, position)
                ) and not outbox.wait_for_space_blocking(self._send_timeout):
                    self._give_up_on_client()
                if outbox.closed:
                    break
        except Exception as exc:
            self._failed(exc)
        finally:
            if not handed_off:
                outbox.finish()
                _close(iterator, messages)
            _close_database_connections(shared)
            with _sync_outboxes_changed:
                _sync_outboxes.discard(outbox)
                _sync_outboxes_changed.notify_all()
            # A closed loop means the consumer no longer waits for this.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(_set_done, done)


def max_sync_streams() -> int:
    """How many sync sources may run at once in this process."""
    from django.conf import settings

    return int(
        getattr(settings, "SSE_RESPONSE_MAX_SYNC_STREAMS", DEFAULT_MAX_SYNC_STREAMS)
    )


def open_sync_streams() -> int:
    """How many sync sources run now, each in its own thread."""
    return len(_sync_outboxes)


def stop_sync_sources(timeout: float) -> bool:
    """
    Tell every sync source to stop, and wait up to ``timeout`` seconds for
    each to reach its next ``yield`` and be closed; return whether all were.
    """
    with _sync_outboxes_changed:
        outboxes = list(_sync_outboxes)
    for outbox in outboxes:
        outbox.close()
    with _sync_outboxes_changed:
        return _sync_outboxes_changed.wait_for(lambda: not _sync_outboxes, timeout)


def never_a_stream(value: object) -> bool:
    """
    Whether ``value`` is iterable but can never be a stream of messages:
    text, bytes and mappings iterate over characters, ints and keys.
    """
    return isinstance(value, (str, bytes, bytearray, memoryview, Mapping))


def _checked_iterable(messages: Any) -> Any:
    if never_a_stream(messages) or (
        not hasattr(messages, "__iter__") and not hasattr(messages, "__aiter__")
    ):
        raise TypeError(
            "An event stream callable must return an iterable or an async "
            f"iterable of messages, not {type(messages).__name__}."
        )
    return messages


def _encoded(encode: Encoder, message: Any, position: int) -> bytes:
    try:
        return encode(message)
    except InvalidMessageError as exc:
        raise exc.at(position) from None


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _close(iterator: object, messages: object) -> None:
    for closable in (iterator, messages) if iterator is not messages else (iterator,):
        close = getattr(closable, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                logger.exception("Closing the event stream source %r failed.", closable)


async def _aclose(iterator: object, messages: object) -> None:
    for closable in (iterator, messages) if iterator is not messages else (iterator,):
        aclose = getattr(closable, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                logger.exception("Closing the event stream source %r failed.", closable)


def _use_shared_connections() -> Mapping[str, Any]:
    """Make this thread use the connections a test shares, if it shares any."""
    shared = shared_connections.get()
    if not shared:
        return {}
    from django.db import connections

    for alias, connection in shared.items():
        connections[alias] = connection
    return shared


def _close_database_connections(shared: Mapping[str, Any]) -> None:
    # Connections are per thread; this thread is about to end, and a
    # connection it opened would otherwise stay open until collected. Those
    # a test shares with it are the test's to close.
    try:
        from django.db import connections

        for connection in connections.all(initialized_only=True):
            if shared.get(connection.alias) is not connection:
                connection.close()
    except Exception:
        logger.debug(
            "Closing the pump thread's database connections failed.", exc_info=True
        )
