"""
The open streams of this process, so that they can all be ended at once.

Some servers give the application no sign that they are shutting down
(gunicorn's sync and gthread workers wait for every request to finish, and
an event stream never does). :func:`end_all_streams`, called from a server
hook or a signal handler, ends each open stream cleanly with a ``retry:``
hint, so its source's ``finally`` runs and its client comes back to another
worker.
"""

from __future__ import annotations

import weakref
from typing import Protocol

__all__ = ["end_all_streams"]


class _Endable(Protocol):
    def end(self, retry_ms: int | None = None) -> bool: ...


_open_streams: weakref.WeakSet[_Endable] = weakref.WeakSet()


def register(stream: _Endable) -> None:
    """Count ``stream`` as open until :func:`unregister`."""
    _open_streams.add(stream)


def unregister(stream: _Endable) -> None:
    _open_streams.discard(stream)


def end_all_streams(retry_ms: int | None = None) -> int:
    """
    End every event stream open in this process and return how many.

    Each stream sends ``retry: <retry_ms>`` (by default the ``end_retry_ms``
    of its response), then ends; its source is closed. Safe to call from any
    thread, and from a signal handler: it only schedules work on each
    stream's event loop.
    """
    while True:
        try:
            streams = list(_open_streams)
        except RuntimeError:
            continue  # The set changed while it was copied; copy it again.
        break
    return sum(stream.end(retry_ms) for stream in streams)
