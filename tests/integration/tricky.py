"""
A stream of data that is easy to get wrong, read by every client the tests
compare (see ``test_clients.py``). Every event has an id and data, so that
the clients' known departures from the standard (see ``peers.md``) do not
come into play: the comparison is about what the library writes.
"""

from __future__ import annotations

from sse_response import EventStreamMessage

BIG = "".join(f"{i:07d} " for i in range(8192))  # 64 KiB on one line

TRICKY_MESSAGES: list[EventStreamMessage] = [
    {"id": "1", "data": "plain"},
    {"id": "2", "event": "multi", "data": "line one\nline two\nline three"},
    {"id": "3", "event": "cr", "data": "before\rafter"},
    {"id": "4", "event": "crlf", "data": "before\r\nafter"},
    {"id": "5", "event": "empty", "data": ""},
    {"id": "6", "event": "trailing", "data": "ends with a newline\n"},
    {
        "id": "7",
        "event": "unicode",
        "data": "h\u00e9llo \u2603 \u65e5\u672c \U0001f389",
    },
    {"id": "8", "event": "big", "data": BIG},
    {"id": "9", "event": "colons", "data": ": not a comment\n data: x"},
    {"id": "\u00e9t\u00e9-10", "event": "t\u00ffpe", "data": "  two leading spaces"},
    {"id": "11", "event": "json", "data": {"a": [1, 2], "b": "\u2028"}},
    {"id": "12", "event": "blank-lines", "data": "\n\n"},
]

#: The event types a client has to listen to.
EVENT_TYPES = sorted({m.get("event") or "message" for m in TRICKY_MESSAGES})
