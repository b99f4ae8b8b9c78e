"""
The ASGI application: Django's, which ends every open stream when the
server is told to stop (the recipe of docs/deployment.md).

Under uvicorn and daphne, a stream that is still open when the server's
graceful timeout runs out is cut without its source's ``finally``: the
server cancels the task that runs Django's ASGI handler, which does not pass
the cancellation on to the response it streams, and the process exits
before that response ever runs again. So the first call, on the server's
event loop in the main thread, chains the SIGTERM handler the server
installed: on SIGTERM, the open streams end first, with a ``retry:`` hint,
and the server's shutdown then has nothing left to wait for.
"""

import os
import signal
import threading
from types import FrameType
from typing import Any

from django.core.asgi import get_asgi_application

import sse_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.project.settings")

django_application = get_asgi_application()
_chained = False


def end_streams_on_sigterm() -> None:
    previous = signal.getsignal(signal.SIGTERM)

    def end_streams(signum: int, frame: FrameType | None) -> None:
        sse_response.end_all_streams()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, end_streams)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _chained
    if not _chained and threading.current_thread() is threading.main_thread():
        _chained = True
        end_streams_on_sigterm()
    await django_application(scope, receive, send)
