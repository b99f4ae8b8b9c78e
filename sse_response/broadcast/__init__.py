"""
Broadcast: publish an event to a channel from anywhere (a view, a management
command, a task), and every open stream subscribed to that channel sends it,
in every process that shares the backend.

::

    from sse_response import EventStreamHttpResponse
    from sse_response.broadcast import publish, subscribe

    publish("orders", {"event": "created", "data": {"n": 1}})

    def orders(request):
        return EventStreamHttpResponse(subscribe("orders"), request=request)

Every event a subscribed stream sends carries an id that the layer assigns:
the stream's position on each of its channels. A client that reconnects with
it is replayed what it missed, or told with a ``stream-reset`` event which
channels cannot be replayed. See docs/broadcast.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from sse_response import metrics
from sse_response.body import refuse_in_event_loop
from sse_response.broadcast.backends import get_backend
from sse_response.broadcast.base import BaseBackend, BroadcastError
from sse_response.broadcast.memory import MemoryBackend
from sse_response.broadcast.oncommit import publish_on_commit
from sse_response.broadcast.positions import (
    InvalidChannelError,
    channel_tag,
    check_channel,
    format_event_id,
)
from sse_response.broadcast.presence import (
    JOIN_EVENT,
    LEAVE_EVENT,
    InvalidPresenceError,
    apresence,
    apresence_count,
    check_info,
    presence,
    presence_count,
)
from sse_response.broadcast.stream import RESET_EVENT, Subscription
from sse_response.encoding import InvalidMessageError, encode
from sse_response.messages import EventStream

if TYPE_CHECKING:
    from sse_response.broadcast.postgres import PostgresBackend
    from sse_response.broadcast.redis import RedisBackend

__all__ = [
    "JOIN_EVENT",
    "LEAVE_EVENT",
    "RESET_EVENT",
    "BaseBackend",
    "BroadcastError",
    "InvalidChannelError",
    "InvalidPresenceError",
    "MemoryBackend",
    "PostgresBackend",
    "RedisBackend",
    "aend_streams",
    "apresence",
    "apresence_count",
    "apublish",
    "end_streams",
    "get_backend",
    "presence",
    "presence_count",
    "publish",
    "publish_on_commit",
    "subscribe",
]


def __getattr__(name: str) -> Any:
    # RedisBackend and PostgresBackend are imported only when used, so that
    # redis-py and psycopg are needed only by those who use them.
    if name == "RedisBackend":
        from sse_response.broadcast.redis import RedisBackend

        return RedisBackend
    if name == "PostgresBackend":
        from sse_response.broadcast.postgres import PostgresBackend

        return PostgresBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _payload(
    message: Mapping[str, Any], json_encoder: type[json.JSONEncoder] | None
) -> bytes:
    """Encode a published message once, for every subscriber, without an id."""
    if not isinstance(message, Mapping):
        raise InvalidMessageError(
            "message", message, "a published message must be a dict"
        )
    if message.get("id") is not None:
        raise InvalidMessageError(
            "id",
            message["id"],
            "is assigned by the broadcast layer (it holds each stream's "
            "position); publish the message without an id",
        )
    if message.get("data") is None and message.get("event") is None:
        raise InvalidMessageError(
            "data", None, "a published message needs data or an event type"
        )
    return encode(message, json_encoder=json_encoder)


def _not_in_event_loop(name: str, instead: str) -> None:
    refuse_in_event_loop(
        f"{name}() waits until the event is stored, which would block "
        f"the running event loop; use 'await {instead}()' in async code."
    )


def publish(
    channel: str,
    message: Mapping[str, Any],
    *,
    json_encoder: type[json.JSONEncoder] | None = None,
) -> str:
    """
    Publish ``message`` (an :class:`~sse_response.EventStreamMessage`
    without ``id``) to ``channel`` and return its id.

    The message is validated and encoded once, here; data that is not text
    is serialized with ``json_encoder`` (Django's ``DjangoJSONEncoder`` by
    default). Return once the event is stored; raise
    :class:`BroadcastError` when it cannot be,
    :class:`~sse_response.InvalidMessageError` for a message that cannot be
    sent, :class:`InvalidChannelError` for a bad channel name, and
    ``SynchronousOnlyOperation`` inside a running event loop (use
    :func:`apublish` there).
    """
    _not_in_event_loop("publish", "apublish")
    check_channel(channel)
    payload = _payload(message, json_encoder)
    backend = get_backend()
    started = time.perf_counter()
    epoch, seq = backend.append(channel, payload)
    metrics.observe_publish(
        metrics.backend_label(backend), time.perf_counter() - started
    )
    return format_event_id([epoch], [channel_tag(channel)], [seq])


async def apublish(
    channel: str,
    message: Mapping[str, Any],
    *,
    json_encoder: type[json.JSONEncoder] | None = None,
) -> str:
    """:func:`publish` for async code."""
    check_channel(channel)
    payload = _payload(message, json_encoder)
    backend = get_backend()
    started = time.perf_counter()
    epoch, seq = await backend.aappend(channel, payload)
    metrics.observe_publish(
        metrics.backend_label(backend), time.perf_counter() - started
    )
    return format_event_id([epoch], [channel_tag(channel)], [seq])


def end_streams(*channels: str) -> None:
    """
    End every open stream subscribed to any of ``channels``, in every
    process, once it has sent the events published before this call (for
    revoked access). Each client reconnects after a second with its last
    id, and the view decides again what it may subscribe to; what it
    missed meanwhile is replayed.
    """
    _not_in_event_loop("end_streams", "aend_streams")
    backend = get_backend()
    for channel in _checked(channels):
        backend.append(channel, None)


async def aend_streams(*channels: str) -> None:
    """:func:`end_streams` for async code."""
    backend = get_backend()
    for channel in _checked(channels):
        await backend.aappend(channel, None)


def subscribe(
    *channels: str,
    backend: BaseBackend | None = None,
    presence: Any = None,
    announce: bool = False,
) -> EventStream:
    """
    Return the event stream of ``channels``, for
    :class:`~sse_response.EventStreamHttpResponse`.

    It is a callable that is given the client's last event id when the
    stream starts: it replays what the client missed on those channels (or
    sends ``event: stream-reset`` with ``{"channels": [...]}`` for those it
    cannot replay), then sends every event published to them, each with an
    id that holds the stream's position on every channel.

    The stream is counted by :func:`presence_count` from the moment it is
    subscribed until it ends; ``presence`` (a small JSON-able value, such as
    ``{"user": 7, "name": "Ada"}``) is what :func:`presence` lists for it.
    With ``announce=True`` its join and leave are published on its channels
    as ``event: presence-join`` and ``event: presence-leave``, with the
    info as data. Raise :class:`InvalidPresenceError` for info that JSON
    cannot hold or that is too big.
    """
    info = check_info(presence)
    names = _checked(channels)
    if not names:
        raise InvalidChannelError("subscribe() needs at least one channel.")
    tags: dict[str, str] = {}
    for name in names:
        other = tags.setdefault(channel_tag(name), name)
        if other != name:
            raise InvalidChannelError(
                f"The channels {other!r} and {name!r} have the same tag in "
                "event ids; rename one of them."
            )
    # The stream yields EncodedMessage bytes, which the response's encoder
    # passes on as they are: they are messages in all but their static type.
    return cast(EventStream, Subscription(names, backend, info, bool(announce)).events)


def _checked(channels: tuple[str, ...]) -> tuple[str, ...]:
    # Duplicates dropped, order kept: the order of the positions in ids.
    return tuple(dict.fromkeys(check_channel(channel) for channel in channels))
