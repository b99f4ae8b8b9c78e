"""
Encoding of event stream messages into the bytes a client reads.

The rules are those of the WHATWG HTML standard, section "Server-sent events"
(the ``../shared/sse-spec.md`` checklist names them P1 to D6). This module
does no I/O and needs Django only to serialize non-text data with its
default JSON encoder, so it can be used, and tested, on its own.

What goes on the wire:

* every field is written as ``name: value`` (``name:`` when the value is
  empty), in the order comment, ``id``, ``event``, ``data``, ``retry``, and a
  message with any of those fields ends with a blank line;
* ``data`` is split into one ``data:`` line per line, at CRLF, CR and LF only,
  so a client rebuilds the same value (with LF line ends). Other characters
  that Python's ``str.splitlines()`` treats as line ends (U+2028, VT, FF,
  NEL, ...) are ordinary data here;
* a message with ``event`` but no ``data`` gets an empty ``data:`` line, as
  an event without data never fires in a client;
* an empty message is a comment (``:``), which clients ignore.

Nothing a value contains can end a field or an event early: values that
would are refused with :class:`InvalidMessageError`, which names the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "HEARTBEAT",
    "EncodedMessage",
    "InvalidMessageError",
    "encode",
]

#: What an empty message, and a heartbeat, put on the wire: one comment line
#: and no blank line, so that no client (not even one that, against the
#: standard, fires an event for an empty block) sees an event.
HEARTBEAT = b":\n"

_FIELDS = frozenset({"id", "event", "data", "retry_ms", "comment"})
_BINARY = (bytes, bytearray, memoryview)
_LF, _CR = ord("\n"), ord("\r")


class EncodedMessage(bytes):
    """
    Bytes that are already one or more complete messages on the wire, as
    :func:`encode` wrote them: :func:`encode` returns them unchanged.

    The broadcast layer encodes a published message once and sends the same
    bytes, behind each stream's own ``id:`` line, to every subscriber.
    """

    __slots__ = ()


class InvalidMessageError(ValueError):
    """
    A message that cannot be written to an event stream as given.

    ``field`` names the offending key of the message (``"message"`` when the
    message itself is not a mapping), ``value`` holds what was given and
    ``reason`` says what is wrong with it.
    """

    def __init__(
        self, field: str, value: object, reason: str, *, position: int | None = None
    ) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        #: Where the message came in its stream (0 for the first thing the
        #: source yielded), when that is known.
        self.position = position
        where = "" if position is None else f" (item {position} of the stream)"
        super().__init__(
            f"Invalid {field!r} in an event stream message{where}: {reason} "
            f"(got {_shortened_repr(value)})"
        )

    def at(self, position: int) -> InvalidMessageError:
        """The same error, saying where in its stream the message came."""
        return InvalidMessageError(
            self.field, self.value, self.reason, position=position
        )


def _shortened_repr(value: object, limit: int = 200) -> str:
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}...{text[-15:]} ({len(text)} characters)"


def encode(
    message: Mapping[str, Any] | None,
    *,
    json_encoder: type[json.JSONEncoder] | None = None,
) -> bytes:
    """
    Return the bytes of one event stream message.

    ``message`` is an :class:`~sse_response.EventStreamMessage`; ``None`` or
    an empty mapping gives a comment. ``data`` that is neither ``str`` nor
    bytes is serialized to JSON with ``json_encoder``, Django's
    ``DjangoJSONEncoder`` by default.

    Raise :class:`InvalidMessageError` for an unknown key, a value of the
    wrong type, an ``id`` or ``event`` containing CR or LF, an ``id``
    containing NUL, a negative ``retry_ms``, bytes that are not UTF-8, text
    that cannot be encoded to UTF-8 (lone surrogates), or data that cannot
    be serialized to JSON.
    """
    if not message:
        return HEARTBEAT
    # This runs once per event: the checks are ordered so that the common
    # message (a dict of a few text fields) takes the cheapest path.
    if type(message) is not dict and not isinstance(message, Mapping):
        if type(message) is EncodedMessage:
            return message
        raise InvalidMessageError(
            "message", message, "must be a dict (an EventStreamMessage) or None"
        )
    if not _FIELDS.issuperset(message):
        unknown = sorted(message.keys() - _FIELDS)[0]
        raise InvalidMessageError(
            unknown,
            message[unknown],
            "is not a field of an event stream message "
            "(id, event, data, retry_ms, comment)",
        )

    get = message.get
    data = get("data")
    message_id = get("id")
    event = get("event")
    retry_ms = get("retry_ms")
    comment = get("comment")
    if data is not None and message_id is event is retry_ms is comment is None:
        return _data_lines(data, json_encoder) + b"\n"
    parts: list[bytes] = []
    if comment is not None:
        parts.append(_comment_lines(comment))
    if message_id is not None:
        if type(message_id) is int:
            # djblets accepted integer ids; they are safe to write as text.
            message_id = str(message_id)
        parts.append(_single_line_field(b"id", "id", message_id))
    if event is not None:
        parts.append(_single_line_field(b"event", "event", event))
    if data is not None:
        parts.append(_data_lines(data, json_encoder))
    elif event is not None:
        # A client fires nothing for a block without data; an event type on
        # its own is meant to fire, with empty data.
        parts.append(b"data:\n")
    elif message_id is None and retry_ms is None:
        # Only a comment: no blank line, as no event is meant.
        return parts[0] if parts else HEARTBEAT
    if retry_ms is not None:
        parts.append(_retry_line(retry_ms))
    parts.append(b"\n")
    return b"".join(parts)


def _retry_line(retry_ms: object) -> bytes:
    if type(retry_ms) is not int:
        raise InvalidMessageError(
            "retry_ms", retry_ms, "must be an int of milliseconds"
        )
    if retry_ms < 0:
        raise InvalidMessageError("retry_ms", retry_ms, "must not be negative")
    return b"retry: %d\n" % retry_ms


def _utf8(field: str, value: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidMessageError(
            field, value, f"cannot be encoded to UTF-8 ({exc.reason})"
        ) from None


def _single_line_field(name: bytes, field: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidMessageError(field, value, "must be a str")
    if "\n" in value or "\r" in value:
        raise InvalidMessageError(
            field, value, "must not contain a line break (CR or LF)"
        )
    if field == "id" and "\0" in value:
        raise InvalidMessageError(
            field, value, "must not contain NUL (clients ignore such an id)"
        )
    if not value:
        return name + b":\n"
    return b"%s: %s\n" % (name, _utf8(field, value))


def _split_lines(raw: bytes) -> list[bytes]:
    """Split UTF-8 text at CRLF, CR and LF, and nowhere else."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")


def _prefixed_lines(prefix: bytes, raw: bytes) -> bytes:
    """
    Write ``raw`` as lines that each start with ``prefix`` (``b"data:"`` or
    ``b":"``), with a space before a non-empty value.
    """
    # Byte values, not one-byte strings: "10 in raw" is a plain memchr,
    # while b"\n" in raw first takes a buffer of its argument (3x slower).
    if _LF not in raw and _CR not in raw:
        return b"%s %s\n" % (prefix, raw) if raw else prefix + b"\n"
    return b"".join(
        b"%s %s\n" % (prefix, line) if line else prefix + b"\n"
        for line in _split_lines(raw)
    )


def _comment_lines(comment: object) -> bytes:
    if not isinstance(comment, str):
        raise InvalidMessageError("comment", comment, "must be a str")
    # Every line of a comment starts with ':', so line breaks in it are safe.
    return _prefixed_lines(b":", _utf8("comment", comment))


def _data_lines(data: object, json_encoder: type[json.JSONEncoder] | None) -> bytes:
    if isinstance(data, str):
        raw = _utf8("data", data)
    elif isinstance(data, _BINARY):
        raw = bytes(data)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMessageError(
                "data", data, f"is not valid UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
    else:
        raw = _utf8("data", _to_json(data, json_encoder))
    return _prefixed_lines(b"data:", raw)


def _to_json(data: object, json_encoder: type[json.JSONEncoder] | None) -> str:
    encoder = _json_encoder_instance(json_encoder or _default_json_encoder())
    try:
        return encoder.encode(data)
    except (TypeError, ValueError) as exc:
        raise InvalidMessageError(
            "data", data, f"cannot be serialized to JSON ({exc})"
        ) from None


_json_encoders: dict[type[json.JSONEncoder], json.JSONEncoder] = {}


def _json_encoder_instance(cls: type[json.JSONEncoder]) -> json.JSONEncoder:
    # An encoder instance holds only its settings, so one per class serves
    # every message. NaN and infinities are refused: they are not JSON, and
    # JSON.parse() in the browser rejects them.
    encoder = _json_encoders.get(cls)
    if encoder is None:
        encoder = cls(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        _json_encoders[cls] = encoder
    return encoder


def _default_json_encoder() -> type[json.JSONEncoder]:
    from django.core.serializers.json import DjangoJSONEncoder

    return DjangoJSONEncoder
