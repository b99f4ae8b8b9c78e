"""
The ASGI application of the demo site: Django's, which ends the open event
streams when the server is told to stop.

A server waits for its open requests to finish before it exits, and an
event stream never finishes. So on Ctrl-C (SIGINT) or SIGTERM, the open
streams end first, with ``sse_response.end_all_streams()``: each sends a
``retry:`` hint and its source's ``finally`` runs; then the server's own
handler runs, and its shutdown has nothing left to wait for. The browser
reconnects with its Last-Event-ID once the server is back.

The handlers are chained on the first request, when the server has
installed its own, and only on the main thread (where uvicorn, daphne and
hypercorn run their event loop): Python runs signal handlers there only.
"""

import os
import signal
import threading
from types import FrameType
from typing import Any

from django.core.asgi import get_asgi_application

import sse_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

django_application = get_asgi_application()
_chained = False


def _end_streams_first(signum: int) -> None:
    previous = signal.getsignal(signum)

    def handler(signum: int, frame: FrameType | None) -> None:
        sse_response.end_all_streams()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signum, handler)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _chained
    if not _chained and threading.current_thread() is threading.main_thread():
        _chained = True
        _end_streams_first(signal.SIGINT)
        _end_streams_first(signal.SIGTERM)
    await django_application(scope, receive, send)
