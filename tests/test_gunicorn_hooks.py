"""The gunicorn hook ends open streams on SIGTERM, then hands the signal on."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from sse_response import EventStreamHttpResponse
from sse_response.gunicorn import post_worker_init
from tests.support import GATE, Probe, make_source, wait_for_event


@pytest.fixture
def signal_handlers() -> Iterator[list[int]]:
    """Stand in for a gunicorn worker's own handlers, and restore pytest's."""
    saved = {
        signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    received: list[int] = []

    def worker_handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    for signum in saved:
        signal.signal(signum, worker_handler)
    yield received
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_ends_open_streams_then_reaches_the_worker(
    signum: int, signal_handlers: list[int], probe: Probe
) -> None:
    response = EventStreamHttpResponse(
        make_source("sync_iterator", lambda last: iter([{"data": "a"}, GATE]), probe),
        heartbeat=None,
        end_retry_ms=2500,
    )
    chunks = aiter(response)
    assert await anext(chunks) == b"data: a\n\n"
    post_worker_init(worker=None)

    signal.raise_signal(signum)

    assert signal_handlers == [signum]
    rest: list[Any] = [chunk async for chunk in chunks]
    assert rest == [b"retry: 2500\n"]
    probe.release()
    assert await wait_for_event(probe.finished)
