"""
Ending open event streams when the server is told to stop.

An event stream never finishes by itself, so a server that waits for the
requests in flight before it exits waits for ever (or until its graceful
timeout, when it cuts the streams and their sources' ``finally`` never
runs). With Django 5.2, uvicorn and daphne cancel the task of Django's
ASGI handler, which does not pass the cancellation on to the response it is
streaming. Ending the streams first, when the signal arrives, avoids all of
that: each stream sends a ``retry:`` hint and ends, its source is closed,
and its client reconnects to a server that is up.

* ASGI (uvicorn, daphne, hypercorn): wrap the application::

      application = EndStreamsOnShutdown(get_asgi_application())

* gunicorn's workers: see :mod:`sse_response.gunicorn`.
* Anything else that runs in the main thread: call
  :func:`end_streams_on_signals` there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType
from typing import Any

from sse_response.lifetime import end_all_streams

__all__ = ["EndStreamsOnShutdown", "end_streams_on_signals"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Any ASGI application; the types of its arguments vary between servers'
#: and frameworks' annotations, so they are left open here.
ASGIApplication = Callable[[Any, Any, Any], Awaitable[None]]


def end_streams_on_signals(signums: Iterable[int] = SIGNALS) -> None:
    """
    Make each of ``signums`` (SIGTERM and SIGINT by default) end every open
    stream first, then do what it did before: call the handler that was
    installed (the server's), or, if there was none, exit the interpreter
    (rather than die at once, so open streams get to end).

    Call it from the main thread, after the server installed its handlers.
    Calling it again for the same signal changes nothing.
    """
    for signum in signums:
        previous = signal.getsignal(signum)
        if getattr(previous, "ends_event_streams", False):
            continue
        signal.signal(signum, _chained_handler(previous))


def _chained_handler(previous: Any) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        end_all_streams(refuse_new=True)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    handler.ends_event_streams = True  # type: ignore[attr-defined]
    return handler


class EndStreamsOnShutdown:
    """
    ASGI middleware: on SIGTERM or SIGINT, end every open event stream
    before the server shuts down.

    The server installs its signal handlers when it starts; this chains
    them on the first request, from the event loop's thread, which for
    uvicorn, daphne and hypercorn is the main thread (the only one that may
    set signal handlers). Elsewhere it does nothing.
    """

    def __init__(self, application: ASGIApplication) -> None:
        self.application = application
        self._chained = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._chained:
            self._chained = True
            if threading.current_thread() is threading.main_thread():
                end_streams_on_signals()
        await self.application(scope, receive, send)
