"""
The workload every server row streams, so that all rows send the same bytes.

A request's query string picks the mode:

* ``burst``: ``n`` events as fast as the source can yield them, then the end;
* ``first``: one event, a 50 ms pause, one more event, then the end (time to
  first event; the pause shows which servers hold the first event back);
* ``hold``: one event, then nothing until the client leaves (memory per
  open stream);
* ``tick``: one event every 50 ms, at most 200 (disconnect-to-cleanup
  latency); the source's ``finally`` appends ``token monotonic_time`` to
  the file named by ``$BENCH_CLEANUP_LOG``.

This module imports nothing outside the standard library, so the raw ASGI
app, the Starlette app and both Django venvs share it.
"""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs

#: The data of every event: a small JSON document, as most SSE payloads are.
DATA = '{"kind":"tick","user":42,"text":"hello, world","values":[1,2,3,4,5,6,7]}'
_DATA_BYTES = DATA.encode()

TICK_SECONDS = 0.05
TICK_LIMIT = 200


def encoded(i: int) -> bytes:
    """The bytes of event ``i``, exactly as sse_response writes them."""
    return b"id: %d\nevent: tick\ndata: %s\n\n" % (i, _DATA_BYTES)


def message(i: int) -> dict[str, str]:
    """Event ``i`` as a message dict, for the libraries that encode."""
    return {"id": str(i), "event": "tick", "data": DATA}


def params(query_string: str | bytes) -> tuple[str, int, str]:
    """Return ``(mode, n, token)`` from a request's query string."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    query = parse_qs(query_string)
    mode = query.get("mode", ["burst"])[0]
    n = int(query.get("n", ["1000"])[0])
    token = query.get("token", [""])[0]
    return mode, n, token


def record_cleanup(token: str) -> None:
    """Note, for the client, when a ``tick`` source's ``finally`` ran."""
    path = os.environ.get("BENCH_CLEANUP_LOG")
    if token and path:
        # time.monotonic() is CLOCK_MONOTONIC, shared by every process on
        # the machine, so the client can subtract its own reading from it.
        with open(path, "a") as log:
            log.write(f"{token} {time.monotonic()}\n")
