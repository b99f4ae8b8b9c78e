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
Workers of uvicorn's worker class run an ASGI application: wrap it in
:class:`sse_response.shutdown.EndStreamsOnShutdown` instead.

This module does not import gunicorn; it only uses the worker it is given.
"""

from __future__ import annotations

from typing import Any

from sse_response.shutdown import end_streams_on_signals

__all__ = ["post_worker_init"]


def post_worker_init(worker: Any) -> None:
    """
    Gunicorn's ``post_worker_init`` hook: make SIGTERM and SIGINT end the
    worker's open event streams first, then let the worker handle them.
    """
    end_streams_on_signals()
