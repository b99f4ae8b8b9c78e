"""
Gunicorn server hooks that end open event streams when a worker shuts down.

Gunicorn's sync and gthread workers wait up to ``graceful_timeout`` for
every request in flight to finish before they exit, and an event stream
never finishes by itself: without help, every stream is cut when the
timeout expires, and its source's ``finally`` never runs. Name these hooks
in your gunicorn configuration file::

    # gunicorn.conf.py
    from sse_response.gunicorn import post_worker_init  # noqa: F401

On SIGTERM (a deploy, a restart) and SIGINT, the worker then ends every open
stream at once with a ``retry:`` hint before doing what it always does; each
source is closed and each client reconnects, to a worker that is still up.
Workers of uvicorn's worker class need none of this (see docs/deployment.md).

This module does not import gunicorn; it only uses the worker it is given.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from sse_response.lifetime import end_all_streams

__all__ = ["post_worker_init"]


def post_worker_init(worker: Any) -> None:
    """
    Gunicorn's ``post_worker_init`` hook: make SIGTERM and SIGINT end the
    worker's open event streams first, then let the worker handle them.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        _end_streams_first(signum)


def _end_streams_first(signum: int) -> None:
    previous = signal.getsignal(signum)

    def handler(received: int, frame: FrameType | None) -> None:
        end_all_streams()
        if callable(previous):
            previous(received, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(received, signal.SIG_DFL)
            signal.raise_signal(received)

    signal.signal(signum, handler)
