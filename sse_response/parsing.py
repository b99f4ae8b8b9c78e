"""
A client's reading of event stream bytes, exactly as the WHATWG HTML standard
describes it ("Server-sent events", parsing an event stream).

Sans-IO: feed it bytes as they arrive, in chunks of any size, and it returns
the events they complete. It serves the tests of this project and of its
users (see :mod:`sse_response.testing`); it is not needed to serve streams.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["EventStreamParser", "ServerSentEvent"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ServerSentEvent:
    """An event as a browser's ``EventSource`` dispatches it."""

    data: str
    type: str = "message"
    last_event_id: str = ""


class EventStreamParser:
    """
    Turn event stream bytes into :class:`ServerSentEvent` objects.

    Besides the events :meth:`feed` returns, the parser keeps what else a
    client would know: ``last_event_id`` (sent back as ``Last-Event-ID`` on
    reconnection), ``retry`` (the reconnection time in milliseconds, or
    ``None`` if the stream never set it) and ``comments`` (the text of every
    comment line, without its colon and one leading space).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._at_start = True
        self._skip_lf = False
        self._data: list[str] = []
        self._type = ""
        self._id_buffer = ""
        self.last_event_id = ""
        self.retry: int | None = None
        self.comments: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Read ``chunk`` and return the events it completes, in order."""
        text = self._decoder.decode(chunk)
        if self._at_start and text:
            self._at_start = False
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf and text:
            # The previous chunk ended with a CR that ended a line; a LF
            # right after it belongs to the same line end.
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        text = self._text + text
        events: list[ServerSentEvent] = []
        position = 0
        for match in _LINE_END.finditer(text):
            if match.group() == "\r" and match.end() == len(text):
                self._skip_lf = True
            event = self._line(text[position : match.start()])
            if event is not None:
                events.append(event)
            position = match.end()
        self._text = text[position:]
        return events

    def close(self) -> None:
        """
        End the stream: an event not yet ended by a blank line is discarded,
        and so is its id, as a client does.
        """
        self._text = ""
        self._data.clear()
        self._type = ""
        self._id_buffer = self.last_event_id

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            comment = line[1:]
            self.comments.append(comment[1:] if comment.startswith(" ") else comment)
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and _DIGITS.fullmatch(value):
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        data, event_type = self._data, self._type
        self._data = []
        self._type = ""
        if not data:
            return None
        return ServerSentEvent(
            data="\n".join(data),
            type=event_type or "message",
            last_event_id=self.last_event_id,
        )
