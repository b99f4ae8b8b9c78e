"""
The live figures of the demo's /figures/ page, counted from the signals of
sse_response.signals (per process: under several gunicorn workers, each
has its own; the Prometheus metrics at /metrics/ add them up).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from django.dispatch import receiver

from sse_response.signals import stream_finished, stream_started

_lock = threading.Lock()
_open: Counter[str] = Counter()
_finished: Counter[str] = Counter()
_totals = {"started": 0, "events": 0, "bytes": 0}


@receiver(stream_started)
def _started(request: Any, **kwargs: Any) -> None:
    # Receivers run on the stream's event loop: quick, no database.
    with _lock:
        _open[_path(request)] += 1
        _totals["started"] += 1


@receiver(stream_finished)
def _finished_one(
    request: Any, reason: str, events: int, bytes_sent: int, **kwargs: Any
) -> None:
    with _lock:
        path = _path(request)
        _open[path] -= 1
        if not _open[path]:
            del _open[path]
        _finished[reason] += 1
        _totals["events"] += events
        _totals["bytes"] += bytes_sent


def _path(request: Any) -> str:
    return "(no request)" if request is None else str(request.path)


def snapshot() -> dict[str, Any]:
    """The figures now, as JSON-able data."""
    with _lock:
        return {
            "open": sum(_open.values()),
            "open_by_path": dict(sorted(_open.items())),
            "finished": dict(sorted(_finished.items())),
            **_totals,
        }
