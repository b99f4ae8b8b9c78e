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

This needs nothing from the user. Each stream, as it starts, makes sure
that SIGTERM and SIGINT end the open streams before they reach whatever
handled them (:func:`watch_for_shutdown`); a server that installs its
handlers after loading the application (uvicorn, daphne, hypercorn) has
them chained at its first stream. Only the main thread may set a signal
handler, so a stream that starts in another thread (gunicorn's gthread
worker, runserver) asks the main thread to do it with ``SIGURG``, a signal
whose default action is to do nothing and that servers leave alone; the
handler that answers it is installed by the ``sse_response`` app
(:func:`prepare`), so under those servers the app must be installed.

The explicit helpers are still here, for code that wants the handlers in
place before the first stream, and they do no harm beside the automatic
path:

* ASGI (uvicorn, daphne, hypercorn): wrap the application::

      application = EndStreamsOnShutdown(get_asgi_application())

* gunicorn's workers: see :mod:`sse_response.gunicorn`.
* Anything else that runs in the main thread: call
  :func:`end_streams_on_signals` there.

Set ``SSE_RESPONSE_END_STREAMS_ON_SIGNALS = False`` to leave every signal
handler alone.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType
from typing import Any

from sse_response.lifetime import end_all_streams

__all__ = [
    "EndStreamsOnShutdown",
    "end_streams_on_signals",
    "prepare",
    "watch_for_shutdown",
]

SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Signals chained only where a Python handler already handles them, so that
#: their default action is never changed: gunicorn's workers quit at once on
#: SIGQUIT, which its master sends them on SIGINT.
HANDLED_ONLY = (signal.SIGQUIT,) if hasattr(signal, "SIGQUIT") else ()

#: The signal a thread sends the main thread to have it chain SIGNALS' handlers.
#: Its default action is to do nothing, so a stray one is harmless; it
#: reports out-of-band data on a socket that asked for it with F_SETOWN, which
#: no Python server does. Absent on Windows, where streams then need a main
#: thread or an explicit helper.
WAKE_SIGNAL: int | None = getattr(signal, "SIGURG", None)

#: Any ASGI application; the types of its arguments vary between servers'
#: and frameworks' annotations, so they are left open here.
ASGIApplication = Callable[[Any, Any, Any], Awaitable[None]]


def end_streams_on_signals(signums: Iterable[int] = SIGNALS) -> None:
    """
    Make each of ``signums`` (SIGTERM and SIGINT by default) end every open
    stream first, then do what it did before: call the handler that was
    installed (the server's), or, if there was none, exit the interpreter
    (rather than die at once, so open streams get to end). SIGQUIT is
    chained too where a Python handler handles it.

    Call it from the main thread, after the server installed its handlers.
    Calling it again for the same signal changes nothing.
    """
    for signum in signums:
        previous = signal.getsignal(signum)
        if not _ours(previous):
            signal.signal(signum, _chained_handler(previous))
    for signum in HANDLED_ONLY:
        previous = signal.getsignal(signum)
        if callable(previous) and not _ours(previous):
            signal.signal(signum, _chained_handler(previous))


def watch_for_shutdown() -> None:
    """
    Make sure that SIGTERM and SIGINT end every open stream first.

    Called as each stream starts, in the stream's thread: cheap once the
    handlers are chained. In the main thread it chains them; in another, it
    asks the main thread to, if :func:`prepare` made that possible.
    """
    if _ours(signal.getsignal(signal.SIGTERM)) and _ours(
        signal.getsignal(signal.SIGINT)
    ):
        return
    if not _enabled():
        return
    if threading.current_thread() is threading.main_thread():
        end_streams_on_signals()
    elif WAKE_SIGNAL is not None and _ours(signal.getsignal(WAKE_SIGNAL)):
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, WAKE_SIGNAL)


def prepare() -> None:
    """
    Let streams that start outside the main thread have the shutdown
    handlers chained (see :func:`watch_for_shutdown`).

    Called by the ``sse_response`` app when Django starts; it does nothing
    outside the main thread. The handler it installs is inherited by the
    processes the server forks, which may reset SIGTERM and SIGINT but leave
    ``WAKE_SIGNAL`` alone. SIGTERM and SIGINT themselves are left alone here:
    a process that never streams (a reloader's parent, a management command)
    keeps its handlers as they are.
    """
    if (
        WAKE_SIGNAL is None
        or threading.current_thread() is not threading.main_thread()
        or not _enabled()
    ):
        return
    previous = signal.getsignal(WAKE_SIGNAL)
    if _ours(previous):
        return

    def chain_on_request(signum: int, frame: FrameType | None) -> None:
        end_streams_on_signals()
        if callable(previous):
            previous(signum, frame)

    chain_on_request.ends_event_streams = True  # type: ignore[attr-defined]
    signal.signal(WAKE_SIGNAL, chain_on_request)


def _ours(handler: object) -> bool:
    return getattr(handler, "ends_event_streams", False) is True


def _enabled() -> bool:
    from django.conf import settings

    if not settings.configured:
        return True
    return getattr(settings, "SSE_RESPONSE_END_STREAMS_ON_SIGNALS", True) is not False


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
