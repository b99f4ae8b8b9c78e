"""
sse_response.lingering: a sync source still running a while after its
stream ended is reported once, and the watcher thread exists only while it
has something to watch.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from sse_response import lingering


def _blocked(release: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=release.wait, args=(10,), daemon=True)
    thread.start()
    return thread


def _watcher_gone() -> bool:
    deadline = time.monotonic() + 2
    while lingering._watcher is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    return lingering._watcher is None


def test_a_source_still_running_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported: list[None] = []
    release = threading.Event()
    thread = _blocked(release)
    ended_at = time.monotonic() - lingering.LINGER_WARNING_AFTER + 0.2
    previous = lingering.lingering_observer
    lingering.lingering_observer = lambda: reported.append(None)
    try:
        with caplog.at_level(logging.WARNING, "sse_response"):
            lingering.watch(thread, "/unit/lingering/", ended_at)
            deadline = time.monotonic() + 2
            while not reported and time.monotonic() < deadline:
                time.sleep(0.01)
        assert len(reported) == 1
        assert "/unit/lingering/" in caplog.text
        assert "sse_response.IDLE" in caplog.text
        # Reported: no longer watched, so the watcher is gone.
        assert _watcher_gone()
    finally:
        lingering.lingering_observer = previous
        release.set()
        thread.join()


def test_a_source_that_ends_in_time_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    thread = _blocked(release)
    with caplog.at_level(logging.DEBUG, "sse_response"):
        lingering.watch(thread, "/unit/in-time/", time.monotonic())
        assert lingering._watcher is not None
        release.set()
        thread.join()
        assert _watcher_gone()
    assert "/unit/in-time/" not in caplog.text


def test_warnings_stop_once_so_many_paths_were_warned_of(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Paths that carry ids never repeat: past the cap, a report of a new
    # path is a DEBUG line and a count, never a flood of WARNINGs.
    monkeypatch.setattr(lingering, "_warned_paths", set())
    monkeypatch.setattr(lingering, "_MAX_WARNED_PATHS", 2)
    with caplog.at_level(logging.DEBUG, "sse_response"):
        for n in range(5):
            lingering._report(f"/jobs/{n}/", 6.0)
    levels = [record.levelname for record in caplog.records]
    assert levels == ["WARNING", "WARNING", "DEBUG", "DEBUG", "DEBUG"]
