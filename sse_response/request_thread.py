"""
Give back the thread that Django's ASGI handler keeps for each request.

Django runs every ASGI request in an asgiref ``ThreadSensitiveContext``: the
first thread-sensitive ``sync_to_async()`` call of the request (Django's own
``request_started`` receivers, ``reset_queries`` and
``close_old_connections``, make one in every request) starts a thread of its
own for that request, which lives until the request ends. For a view that
returns at once, that is a few milliseconds. For an event stream it is
hours: 10,000 open streams hold 10,000 idle threads, and every thread
started after them pays for scanning them all (``threading`` keeps a list of
every live thread's shutdown lock), so a storm of connections slows down
with the number of streams already open.

Once a stream starts, nothing of the view runs in that thread any more: it
closes the database connections it opened (they belong to it, as Django's
connections are per thread, and no other thread could close them), then
ends. A thread-sensitive call that the stream's source makes later (the
async ORM, say) gets a new one, as asgiref does for any new context.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import SyncToAsync
from django.db import connections

__all__ = ["release_request_thread"]

logger = logging.getLogger("sse_response")


def _close_connections() -> None:
    # In the request's thread: the connections it opened are its own.
    connections.close_all()


def release_request_thread() -> bool:
    """
    Stop the thread of the running request's ``ThreadSensitiveContext`` once
    it has closed its database connections; return whether there was one.
    Outside such a context (WSGI, a test), do nothing.
    """
    try:
        context = SyncToAsync.thread_sensitive_context.get()
    except LookupError:
        return False
    if getattr(context, "_executor", None) is not None:
        # An executor its caller gave and owns: not ours to stop.
        return False
    executors: Any = getattr(SyncToAsync, "context_to_thread_executor", None)
    if executors is None:
        return False
    executor = executors.pop(context, None)
    if executor is None:
        return False
    try:
        executor.submit(_close_connections)
    except RuntimeError:
        logger.debug("The request's thread was already shut down.")
    # Without waiting: the thread finishes what it was given, then ends.
    executor.shutdown(wait=False)
    return True
