"""
The shape of the messages an event stream yields.

These names are those of djblets' ``djblets.http.responses`` module, so code
written against djblets type-checks against sse_response too; the aliases are
widened to the async forms this library also accepts.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, Final, TypeAlias

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # pragma: no cover - exercised on Python 3.10 only
    from typing_extensions import NotRequired, TypedDict

__all__ = [
    "IDLE",
    "EventStream",
    "EventStreamMessage",
    "EventStreamMessages",
]


class EventStreamMessage(TypedDict):
    """
    One message of an event stream.

    Every key is optional, and a key set to ``None`` counts as absent. A
    message with ``data`` fires an event in the client; one with only ``id``
    or ``retry_ms`` updates the client's state without firing; an empty
    message (``{}`` or ``None``) is written as a comment, which keeps the
    connection alive.
    """

    #: The payload. ``str`` and ``bytes`` (UTF-8) are sent as they are, one
    #: ``data:`` line per line; anything else is serialized to JSON.
    data: NotRequired[Any]

    #: The event type the client dispatches (``message`` when absent).
    event: NotRequired[str | None]

    #: The event id the client sends back as ``Last-Event-ID`` when it
    #: reconnects. An empty string resets it.
    id: NotRequired[str | None]

    #: How long the client waits before reconnecting, in milliseconds.
    retry_ms: NotRequired[int | None]

    #: A comment, ignored by clients (an extension over djblets).
    comment: NotRequired[str | None]


class Idle:
    """The type of :data:`IDLE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "sse_response.IDLE"

    def __reduce__(self) -> str:
        return "IDLE"


#: What a source yields when it has nothing to send this time: nothing goes on
#: the wire, it is no message (heartbeats still come on time), and the stream
#: can end right there if its client went away. A sync source that polls
#: (a query, then ``time.sleep()``) yields it after each round that found
#: nothing, so that it is closed within one round of a disconnect rather than
#: at its next real message. (``None`` still means an empty message: a ``:``
#: comment on the wire, as in djblets.)
IDLE: Final = Idle()

#: What a source may yield: a message, ``None`` (an empty message), or
#: :data:`IDLE` (nothing).
EventStreamItem: TypeAlias = EventStreamMessage | Idle | None

#: The messages of a stream: a sync or async iterable of messages. ``None``
#: stands for an empty message, as in djblets; :data:`IDLE` for nothing.
EventStreamMessages: TypeAlias = (
    Iterable[EventStreamItem] | AsyncIterable[EventStreamItem]
)

#: What ``EventStreamHttpResponse`` accepts: the messages themselves, or a
#: callable that is given the client's last event id (or ``None``) when the
#: stream starts and returns them, directly or through an awaitable.
EventStream: TypeAlias = (
    EventStreamMessages
    | Callable[[str | None], EventStreamMessages]
    | Callable[[str | None], Awaitable[EventStreamMessages]]
)
