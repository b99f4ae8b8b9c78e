"""
A gunicorn server hook that ends open event streams when a worker shuts down.

This is no longer needed: with the ``sse_response`` app installed, every
worker's SIGTERM and SIGINT are chained by the streams themselves (see
:mod:`sse_response.shutdown`). The hook chains them earlier, when the worker
starts, for code that wants that; it does no harm beside the automatic path::

    # gunicorn.conf.py
    from sse_response.gunicorn import post_worker_init  # noqa: F401

On SIGTERM (a deploy, a restart) and SIGINT, the worker then ends every open
stream at once with a ``retry:`` hint before doing what it always does; each
source is closed and each client reconnects, to a worker that is still up.

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
