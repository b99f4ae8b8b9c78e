"""
Django signals for the life of an event stream.

* :data:`stream_started`: a stream starts (its first chunk is about to go
  out; never for ``HEAD``). Arguments: ``request`` (the request given to the
  response, or ``None``).
* :data:`stream_finished`: a stream that started has ended and its source is
  closed (or, for a sync source still blocked, told to stop). Arguments:
  ``request``, ``reason`` (one of :data:`REASONS`), ``duration`` (seconds
  since it started), ``events`` (event blocks sent: every message that ends
  with a blank line, so heartbeats and comments are not counted) and
  ``bytes_sent``.
* :data:`stream_reset`: a broadcast stream sent ``event: stream-reset``.
  Arguments: ``channels`` (the list of channels it names) and ``request``.

The sender of ``stream_started`` and ``stream_finished`` is the response's
class (:class:`~sse_response.EventStreamHttpResponse` or a subclass).

Receivers run where the stream runs, on its event loop (the server's under
ASGI, the stream's own under WSGI): a plain function is called there
directly, with no thread hop, so it must be quick and must not block (no
database query: under ASGI Django refuses one there); an ``async def``
receiver is awaited. A receiver that raises is logged on the
``sse_response`` logger and the others still run; it never breaks a stream.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from django.dispatch import Signal

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = [
    "CLIENT_LEFT",
    "COMPLETED",
    "ENDED",
    "ERROR",
    "MAX_DURATION",
    "REASONS",
    "REFUSED",
    "SHUTDOWN",
    "TOO_SLOW",
    "asend_stream_reset",
    "current_request",
    "report_end",
    "stream_finished",
    "stream_reset",
    "stream_started",
]

logger = logging.getLogger("sse_response")

#: The source ran out (its iterator ended).
COMPLETED: Final = "completed"
#: The client went away, or the server cut the stream (a disconnect under
#: ASGI, a failed write under WSGI).
CLIENT_LEFT: Final = "client_left"
#: The client took nothing for ``send_timeout`` seconds, or a broadcast
#: stream's client fell too far behind.
TOO_SLOW: Final = "too_slow"
#: ``sse_response.broadcast.end_streams()`` ended it.
ENDED: Final = "ended"
#: ``max_duration`` passed.
MAX_DURATION: Final = "max_duration"
#: ``end_all_streams()``: the server was told to stop or reload.
SHUTDOWN: Final = "shutdown"
#: The source raised, or yielded a message that cannot be sent.
ERROR: Final = "error"
#: Refused at its start: ``SSE_RESPONSE_MAX_SYNC_STREAMS`` sync sources
#: were running already.
REFUSED: Final = "refused"

#: Every ``reason`` that ``stream_finished`` sends.
REASONS: Final = frozenset(
    {COMPLETED, CLIENT_LEFT, TOO_SLOW, ENDED, MAX_DURATION, SHUTDOWN, ERROR, REFUSED}
)

#: Sent when a stream starts: ``request``.
stream_started = Signal()
#: Sent when a stream that started has ended: ``request``, ``reason``,
#: ``duration``, ``events``, ``bytes_sent``.
stream_finished = Signal()
#: Sent when a broadcast stream sends ``stream-reset``: ``channels``, ``request``.
stream_reset = Signal()


class StreamState:
    """
    What a stream's source may tell the stream, and know of it, while it
    runs; see :func:`report_end` and :func:`current_request`.
    """

    __slots__ = ("reported_reason", "request")

    def __init__(self, request: HttpRequest | None) -> None:
        self.request = request
        #: The reason the source gave with report_end(), if any.
        self.reported_reason: str | None = None


#: Set while a stream starts its source, so that the source's task or thread
#: (which copy the context then) finds its stream.
current_stream: contextvars.ContextVar[StreamState | None] = contextvars.ContextVar(
    "sse_response.current_stream", default=None
)


def report_end(reason: str) -> None:
    """
    Tell the stream whose source calls this why it is about to end, for
    ``stream_finished``: call it, then end the source (return from the
    generator). Used by sources that end a stream on purpose, as the
    broadcast stream does for a client too slow to keep up (``"too_slow"``)
    or for ``end_streams()`` (``"ended"``).

    It counts only if the source then ends by itself: a client that left,
    ``max_duration``, a shutdown or an error win. Outside a stream's source
    it does nothing. Raise ``ValueError`` for a reason not in
    :data:`REASONS`.
    """
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {sorted(REASONS)}, not {reason!r}.")
    state = current_stream.get()
    if state is not None:
        state.reported_reason = reason


def current_request() -> HttpRequest | None:
    """The request of the stream whose source calls this, or ``None``."""
    state = current_stream.get()
    return None if state is None else state.request


async def send(signal: Signal, sender: Any, **named: Any) -> None:
    """
    Send ``signal`` from a stream's event loop: plain receivers are called
    here, ``async def`` ones awaited; errors are logged, never raised.
    """
    if not signal.receivers:
        return
    # Django's own split of the live receivers into sync and async ones,
    # as send() and asend() use it.
    sync_receivers, async_receivers = signal._live_receivers(sender)
    for receiver in sync_receivers:
        try:
            receiver(signal=signal, sender=sender, **named)
        except Exception:
            logger.exception("A receiver of an sse_response signal failed.")
    for receiver in async_receivers:
        try:
            await receiver(signal=signal, sender=sender, **named)
        except Exception:
            logger.exception("A receiver of an sse_response signal failed.")


async def asend_stream_reset(channels: Sequence[str], sender: Any = None) -> None:
    """
    Send :data:`stream_reset` for the stream whose source calls this (the
    broadcast stream, when it sends ``stream-reset``), with its request.
    """
    await send(stream_reset, sender, channels=list(channels), request=current_request())
