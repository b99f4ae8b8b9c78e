"""
Sync sources that outlive their stream, made visible.

A sync source runs in a thread, and Python offers no safe way to stop a
thread from outside: the stream can only close the source when it next
yields. A source that blocks without yielding (a polling loop that sleeps
and yields only when a row is new) therefore keeps its thread, and its
database connections, after its client left, until it yields again. The
README's ``IDLE`` is the fix: a source yields it after each round that found
nothing.

This module tells whoever runs the site: when a stream has ended and its
sync source has still not yielded ``LINGER_WARNING_AFTER`` seconds later, a
WARNING goes to the ``sse_response`` logger, naming the request path and
pointing at ``IDLE`` (once per path in a process; later ones at DEBUG), and
``sse_response_lingering_sources_total`` counts it (sse_response.metrics).

One thread watches every such source, from the first one until none is left
to watch (it looks ten times a second), so a site without them pays nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sse_response import lifetime

__all__ = ["LINGER_WARNING_AFTER", "watch"]

logger = logging.getLogger("sse_response")

#: Seconds after its stream ended that a sync source that has not yielded
#: since is reported. Longer than most poll intervals, so a source that does
#: yield (IDLE or events) between its rounds is never reported.
LINGER_WARNING_AFTER = 5.0

#: Paths already warned about at WARNING level in this process (bounded).
_warned_paths: set[str] = set()
_MAX_WARNED_PATHS = 1000

#: Told of each lingering source (sse_response.metrics sets it).
lingering_observer: Callable[[], None] | None = None

#: How often the watcher looks at the sources it watches.
POLL_INTERVAL = 0.1

_lock = threading.Lock()
#: [thread, label, when its stream ended], for each source not reported yet.
_watched: list[tuple[threading.Thread, str, float]] = []
_watcher: threading.Thread | None = None


def watch(thread: threading.Thread, label: str, ended_at: float) -> None:
    """
    Report the source running in ``thread`` if it still runs
    ``LINGER_WARNING_AFTER`` seconds after ``ended_at`` (``time.monotonic()``
    when its stream ended). ``label`` names the stream (its request path).
    """
    global _watcher
    with _lock:
        _watched.append((thread, label, ended_at))
        # The watcher ends when nothing is left to watch (so a process is
        # back to its threads of before), and a process forked from one that
        # watched (gunicorn's --preload) has none: start one when needed.
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(
                target=_watch, name="sse_response lingering sources", daemon=True
            )
            _watcher.start()


def _watch() -> None:
    global _watcher
    while True:
        now = time.monotonic()
        due = []
        with _lock:
            waiting = []
            for entry in _watched:
                thread, _, ended_at = entry
                if not thread.is_alive():
                    continue  # It yielded, and was closed: nothing to report.
                if now >= ended_at + LINGER_WARNING_AFTER:
                    due.append(entry)
                else:
                    waiting.append(entry)
            _watched[:] = waiting
            if not waiting and not due:
                _watcher = None
                return
        for _, label, ended_at in due:
            if not lifetime.refusing_new_streams():
                _report(label, now - ended_at)
        time.sleep(POLL_INTERVAL)


def _report(label: str, seconds: float) -> None:
    observer = lingering_observer
    if observer is not None:
        observer()
    # A WARNING once per path, for so many paths at most (paths that carry
    # ids are endless): past that, every report is a DEBUG line and a count.
    first = label not in _warned_paths and len(_warned_paths) < _MAX_WARNED_PATHS
    if first:
        _warned_paths.add(label)
    logger.log(
        logging.WARNING if first else logging.DEBUG,
        "The sync source of the event stream of %s has not yielded for %.0f s "
        "since its stream ended (its client left, or the stream was ended), so "
        "it cannot be closed: it keeps its thread, and its database "
        "connections, until it next yields. A source that polls should yield "
        "sse_response.IDLE after each round that found nothing, which lets the "
        "stream close it there (README, 'Polling: IDLE'). Further streams of "
        "this path that do the same are logged at DEBUG level and counted in "
        "the metric sse_response_lingering_sources_total.",
        label,
        seconds,
    )
