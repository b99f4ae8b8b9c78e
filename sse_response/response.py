"""
EventStreamHttpResponse: a Server-Sent Events response for Django.
"""

from __future__ import annotations

import enum
import functools
import json
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Final

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

from sse_response.body import EmptyBody, EventStreamBody, in_event_loop
from sse_response.encoding import InvalidMessageError, encode
from sse_response.messages import IDLE, EventStream
from sse_response.pumps import never_a_stream

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = ["EventStreamHttpResponse", "NoRequestWarning"]

#: The default number of seconds without a message before a heartbeat.
DEFAULT_HEARTBEAT = 15.0

#: The default number of seconds a stalled client may take nothing before
#: its stream's source is closed.
DEFAULT_SEND_TIMEOUT = 30.0


def last_event_id(request: HttpRequest | None) -> str | None:
    """
    Return the id of the last event the client saw: the ``Last-Event-ID``
    header, else the ``lastEventId`` query parameter that EventSource
    polyfills send, else ``None``.
    """
    if request is None:
        return None
    value = request.headers.get("Last-Event-ID")
    if value is None:
        value = request.GET.get("lastEventId")
    return value


class NoRequestWarning(UserWarning):
    """
    A callable source was given without ``request=``: it will be called with
    ``None`` as the last event id, whatever the client sent.
    """


class _NotGiven(enum.Enum):
    NOT_GIVEN = enum.auto()


#: The default of ``request=``: a callable source warns unless a request,
#: or ``None``, is given.
_NOT_GIVEN: Final = _NotGiven.NOT_GIVEN


def _check_source(
    event_stream: object, encoder: functools.partial[bytes], request_given: bool
) -> None:
    if callable(event_stream):
        if not request_given:
            warnings.warn(
                "A callable event stream source without request= is always "
                "called with None as the last event id, so a client that "
                "reconnects starts over. Pass request=request to "
                "EventStreamHttpResponse (or request=None if there is no "
                "request).",
                NoRequestWarning,
                stacklevel=3,
            )
        return
    if never_a_stream(event_stream):
        raise TypeError(
            "event_stream must be an iterable or async iterable of messages "
            f"(dicts), or a callable returning one, not {type(event_stream).__name__} "
            f"({_short(event_stream)}): wrap a single message in a list, "
            '[{"data": ...}].'
        )
    if isinstance(event_stream, (list, tuple)):
        # Every message is known now: refuse a bad one while the view runs,
        # not once the client has its 200.
        for position, message in enumerate(event_stream):
            if message is not IDLE:
                try:
                    encoder(message)
                except InvalidMessageError as exc:
                    raise exc.at(position) from None
        return
    if hasattr(event_stream, "__iter__") or hasattr(event_stream, "__aiter__"):
        return
    raise TypeError(
        "event_stream must be an iterable or async iterable of messages, or a "
        "callable taking the last event id that returns one; got "
        f"{type(event_stream).__name__}."
    )


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _check_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(
            f"{name} must be a positive number of seconds or None, not {value!r}."
        )


class EventStreamHttpResponse(StreamingHttpResponse):
    """
    A streaming response that sends Server-Sent Events.

    ``event_stream`` gives the messages (see
    :class:`~sse_response.EventStreamMessage`): a sync or async iterable of
    them, or a sync or async callable that is called when the stream starts
    with the client's last event id (``None`` on a first connection) and
    returns one. Pass ``request`` so that the last event id can be read,
    and so that a ``HEAD`` request never starts the stream; a callable
    source without ``request=`` warns (:class:`NoRequestWarning`) unless
    ``request=None`` is passed. Text, bytes and mappings are refused with
    ``TypeError`` (they iterate over characters, ints and keys), and the
    messages of a list or tuple are checked at once, so that a bad one
    raises :class:`~sse_response.InvalidMessageError` in the view.

    Each message is sent as soon as the source yields it, under ASGI and
    under WSGI alike, whatever the kind of source. When the source yields
    nothing for ``heartbeat`` seconds (``None`` disables it), a comment is
    sent, which keeps proxies from closing an idle connection and lets WSGI
    servers notice a client that went away. Data that is not text is
    serialized to JSON with ``json_encoder``.

    After ``max_duration`` seconds (``None``: never), or when
    :func:`~sse_response.end_all_streams` is called, the stream sends
    ``retry: <end_retry_ms>`` and ends, and the client reconnects with its
    last event id. A client that takes nothing for ``send_timeout`` seconds
    while the stream has data for it gets its source closed.

    Closing the response (Django does when the response ends or the client
    disconnects) closes the source, so its ``finally`` runs then. An error
    in the source, or a message that cannot be encoded, is logged on the
    ``sse_response`` logger and ends the stream cleanly, so the client
    reconnects with its last event id.

    The response is sent with ``Cache-Control: no-cache`` and
    ``X-Accel-Buffering: no`` (pass ``headers`` to change them) and is never
    compressed by Django's ``GZipMiddleware``, which would hold events back.
    """

    def __init__(
        self,
        event_stream: EventStream,
        *,
        request: HttpRequest | _NotGiven | None = _NOT_GIVEN,
        status: int = 200,
        content_type: str = "text/event-stream",
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        max_duration: float | None = None,
        end_retry_ms: int = 1000,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        json_encoder: type[json.JSONEncoder] = DjangoJSONEncoder,
        **kwargs: Any,
    ) -> None:
        encoder = functools.partial(encode, json_encoder=json_encoder)
        request_given = request is not _NOT_GIVEN
        if isinstance(request, _NotGiven):
            request = None
        _check_source(event_stream, encoder, request_given)
        _check_seconds("heartbeat", heartbeat)
        _check_seconds("max_duration", max_duration)
        _check_seconds("send_timeout", send_timeout)
        if (
            isinstance(end_retry_ms, bool)
            or not isinstance(end_retry_ms, int)
            or (end_retry_ms < 0)
        ):
            raise ValueError(
                "end_retry_ms must be a non-negative int of milliseconds, "
                f"not {end_retry_ms!r}."
            )
        self.event_stream = event_stream
        self.request = request
        self.heartbeat = heartbeat
        self.max_duration = max_duration
        self.end_retry_ms = end_retry_ms
        self.send_timeout = send_timeout
        self.json_encoder = json_encoder
        content: EventStreamBody | EmptyBody
        if request is not None and request.method == "HEAD":
            content = EmptyBody()
        else:
            content = EventStreamBody(
                event_stream,
                last_event_id=last_event_id(request),
                encode=encoder,
                heartbeat=heartbeat,
                max_duration=max_duration,
                end_retry_ms=end_retry_ms,
                send_timeout=send_timeout,
                request=request,
                sender=type(self),
            )
        #: The stream's own body, even once something wraps the content.
        self._event_stream_body = content
        super().__init__(content, status=status, content_type=content_type, **kwargs)
        self.headers.setdefault("Cache-Control", "no-cache")
        self.headers.setdefault("X-Accel-Buffering", "no")
        # GZipMiddleware, and compression middleware like it, leaves alone a
        # response that already has a Content-Encoding. The empty value never
        # goes on the wire: see items().
        self.headers.setdefault("Content-Encoding", "")

    # The body is an EventStreamBody until middleware or a test client wraps
    # it; from then on Django's own handling of streaming content applies.

    _body: EventStreamBody | EmptyBody | None = None
    _is_async = False

    def _set_streaming_content(self, value: Any) -> None:
        if isinstance(value, (EventStreamBody, EmptyBody)):
            self._body = value
            self._iterator = value
            self._resource_closers.append(value.close)  # type: ignore[attr-defined]
        else:
            self._body = None
            super()._set_streaming_content(value)  # type: ignore[misc]

    @property
    def streaming_content(self) -> Any:
        """
        The chunks of the stream.

        While nothing has wrapped it, this is the stream's own body, which
        can be iterated with ``for`` or ``async for``.
        """
        if self._body is not None:
            return self._body
        return super().streaming_content

    @streaming_content.setter
    def streaming_content(self, value: Any) -> None:
        self._set_streaming_content(value)

    @property
    def is_async(self) -> bool:
        """
        Whether the content should be iterated with ``async for``.

        The stream's own body can be iterated either way, so this answers
        for the caller: true inside a running event loop. Middleware and
        Django's test clients then wrap the content the right way.
        """
        if self._body is not None:
            return in_event_loop()
        return self._is_async

    @is_async.setter
    def is_async(self, value: bool) -> None:
        self._is_async = value

    def __iter__(self) -> Iterator[bytes]:
        if self._body is not None:
            return iter(self._body)
        return super().__iter__()

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            return aiter(self._body)
        return super().__aiter__()

    def items(self) -> Any:
        """The headers as sent, without the empty ``Content-Encoding``."""
        return [
            (name, value)
            for name, value in self.headers.items()
            if value or name.lower() != "content-encoding"
        ]
