"""
The open streams of this process, so that they can all be ended at once.

Some servers give the application no sign that they are shutting down
(gunicorn's sync and gthread workers wait for every request to finish, and
an event stream never does). :func:`end_all_streams`, called from a server
hook or a signal handler (see :mod:`sse_response.shutdown`), ends each open
stream cleanly with a ``retry:`` hint, so its source's ``finally`` runs and
its client comes back to another worker.

When the interpreter exits, the streams still open are ended too, and their
sources get up to ``EXIT_GRACE`` seconds to run their ``finally``: pump
threads are daemon threads, which would otherwise stop wherever they are.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Protocol

from sse_response.pumps import stop_sync_sources

__all__ = ["end_all_streams"]

#: How long, at most, the interpreter's exit waits for open streams to end.
EXIT_GRACE = 1.0


class _Endable(Protocol):
    def end(self, retry_ms: int | None = None) -> bool: ...


#: A stream is in here from the moment it starts until its source is closed.
_open_streams: set[_Endable] = set()
_closed_one = threading.Condition()
#: Set once the process is shutting down: streams that start now end at once.
_refusing = False


def register(stream: _Endable) -> None:
    """Count ``stream`` as open until :func:`unregister`."""
    with _closed_one:
        _open_streams.add(stream)


def unregister(stream: _Endable) -> None:
    with _closed_one:
        _open_streams.discard(stream)
        _closed_one.notify_all()


def end_all_streams(retry_ms: int | None = None, *, refuse_new: bool = False) -> int:
    """
    End every event stream open in this process and return how many.

    Each stream sends ``retry: <retry_ms>`` (by default the ``end_retry_ms``
    of its response), then ends; its source is closed. With ``refuse_new``,
    for a process that is shutting down, every stream that starts from now
    on ends at once the same way, without starting its source: a client
    that reconnects on a kept-alive connection is sent on too.

    Safe to call from any thread, and from a signal handler: it takes no
    lock, and only schedules work on each stream's event loop.
    """
    return len(_end_all(retry_ms, refuse_new=refuse_new))


def refusing_new_streams() -> bool:
    """Whether streams that start now should end at once (see end_all_streams)."""
    return _refusing


def _end_all(retry_ms: int | None, *, refuse_new: bool) -> list[_Endable]:
    """End the open streams; return those that were still open."""
    global _refusing
    if refuse_new:
        # Before the streams are listed: a stream registers, then checks
        # this flag, so it is either listed below or sees the flag.
        _refusing = True
    while True:
        try:
            streams = list(_open_streams)
        except RuntimeError:
            continue  # The set changed while it was copied; copy it again.
        return [stream for stream in streams if stream.end(retry_ms)]


@atexit.register
def _end_streams_at_exit() -> None:
    deadline = time.monotonic() + EXIT_GRACE
    ending = _end_all(None, refuse_new=True)
    with _closed_one:
        _closed_one.wait_for(
            lambda: not any(stream in _open_streams for stream in ending),
            max(deadline - time.monotonic(), 0.0),
        )
    stop_sync_sources(max(deadline - time.monotonic(), 0.0))
