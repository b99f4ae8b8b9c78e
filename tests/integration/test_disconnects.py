"""
A client that goes away makes its stream's source close; many that do leave
nothing behind in the server process.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.integration.clients import RawStream, Stream, token, wait_for
from tests.integration.conftest import Served
from tests.integration.project.views import SOURCE_KINDS
from tests.integration.servers import SERVERS

INTERVAL = 0.25
HEARTBEAT = 0.5


def allowed_latency(served: Served, kind: str) -> float:
    """How long after a disconnect the source's ``finally`` may run."""
    if not served.spec.asgi:
        return HEARTBEAT + 1.0  # the server learns of it when a write fails
    if kind.startswith("async"):
        return 1.0  # the server tells the app at once; the source is cancelled
    return INTERVAL + 1.0  # a sync source is closed at its next yield


@pytest.mark.parametrize("served", list(SERVERS), indirect=True)
@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("close", ["clean", "reset"])
@pytest.mark.timeout(30)
def test_a_client_that_goes_away_closes_the_source(
    served: Served, kind: str, close: str, figures: list[tuple[str, str]]
) -> None:
    # Async sources go idle after 3 events; sync ones yield every INTERVAL.
    t = token()
    path = f"/stream/{kind}/?token={t}&idle=3&interval={INTERVAL}&heartbeat={HEARTBEAT}"
    try:
        if close == "clean":
            stream = Stream(served.client, served.url(path))
            try:
                assert [e.data for e in stream.events(3)] == ["1", "2", "3"]
            finally:
                closed_at = time.time()
                stream.close()
        else:
            with RawStream(served.server.port, path) as raw:
                assert [e.data for e in raw.events(3)] == ["1", "2", "3"]
                closed_at = time.time()
                raw.close(reset=True)
        ran = served.reports.wait_finally(t, 10)
    finally:
        served.reports.release(t)
    latency = ran.at - closed_at
    figures.append(
        (f"cleanup latency {served.spec.name:18} {kind:14} {close}", f"{latency:.2f} s")
    )
    assert latency <= allowed_latency(served, kind)


def status(client: httpx.Client, served: Served) -> dict[str, Any]:
    response = client.get(served.url("/status/"))
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    # A server's thread pool may grow, up to its size, and stay so: those are
    # counted apart.
    result["own_threads"] = result["threads"] - result["pool_threads"]
    return result


def connect_and_abort(served: Served, kind: str, n: int) -> list[str]:
    """Open ``n`` streams one after the other, each closed after one event."""
    tokens = []
    for i in range(n):
        t = token()
        tokens.append(t)
        path = f"/stream/{kind}/?token={t}&interval=0.05&heartbeat={HEARTBEAT}"
        with RawStream(served.server.port, path) as raw:
            assert raw.next_event().data == "1"
            raw.close(reset=i % 2 == 0)
    for t in tokens:
        served.reports.wait_finally(t, 10)
    return tokens


# gunicorn's sync worker is left out: its streams spread over 8 processes,
# each of which holds one stream at a time and is measured elsewhere.
LEAK_SERVERS = [name for name in SERVERS if name != "gunicorn-sync"]
CYCLES = 200
#: How much the resident memory of the server may grow over the cycles.
RSS_BOUND_KB = 4 * 1024


@pytest.mark.parametrize("served", LEAK_SERVERS, indirect=True)
@pytest.mark.parametrize("kind", ["sync_iter", "async_iter"])
@pytest.mark.timeout(120)
def test_connect_and_abort_cycles_leave_nothing_behind(
    served: Served, kind: str, figures: list[tuple[str, str]]
) -> None:
    with httpx.Client() as client:
        connect_and_abort(served, kind, 20)  # warm up caches and pools
        before = status(client, served)
        started = time.monotonic()
        connect_and_abort(served, kind, CYCLES)
        elapsed = time.monotonic() - started

        def settled() -> dict[str, Any] | None:
            now = status(client, served)
            # Not above where they started (the warm-up's last connections
            # may still have been closing when that was read).
            keys = ("own_threads", "fds", "tasks", "pump_threads")
            return now if all((now[k] or 0) <= (before[k] or 0) for k in keys) else None

        try:
            after = wait_for(settled, 10, "threads, fds and tasks to settle")
        except AssertionError:
            after = status(client, served)
            raise AssertionError(f"before {before}, after {after}") from None
    grown = after["rss_kb"] - before["rss_kb"]
    figures.append(
        (
            f"{CYCLES} cycles {served.spec.name:18} {kind:10}",
            f"threads {before['own_threads']}->{after['own_threads']} (+pool "
            f"{before['pool_threads']}->{after['pool_threads']}), fds {before['fds']}->"
            f"{after['fds']}, tasks {before['tasks']}->{after['tasks']}, RSS "
            f"{grown:+d} KiB, {elapsed / CYCLES * 1000:.1f} ms/cycle",
        )
    )
    assert after["pid"] == before["pid"]
    assert grown <= RSS_BOUND_KB


ASGI_SERVERS = [name for name, spec in SERVERS.items() if spec.asgi]
OPEN_STREAMS = 30


@pytest.mark.parametrize("served", ASGI_SERVERS, indirect=True)
@pytest.mark.timeout(60)
def test_open_streams_hold_no_thread_each_under_asgi(
    served: Served, figures: list[tuple[str, str]]
) -> None:
    """
    Django keeps a thread for each ASGI request until it ends (its
    ThreadSensitiveContext); a stream gives it back once it starts, so that
    10,000 open streams are not 10,000 idle threads.
    """
    path = f"/stream/async_iter/?idle=1&heartbeat={HEARTBEAT}"
    with httpx.Client() as client:
        with RawStream(served.server.port, path) as warm:
            assert warm.next_event().data == "1"
        before = status(client, served)
        streams = [RawStream(served.server.port, path) for _ in range(OPEN_STREAMS)]
        try:
            for stream in streams:
                assert stream.next_event().data == "1"

            def settled() -> dict[str, Any] | None:
                now = status(client, served)
                # A few threads may come and go (a thread-sensitive call at the
                # end of a request, the server's own pool): not one a stream.
                return now if now["threads"] - before["threads"] < 10 else None

            try:
                during = wait_for(settled, 10, "the requests' threads to end")
            except AssertionError:
                during = status(client, served)
                raise AssertionError(f"before {before}, during {during}") from None
        finally:
            for stream in streams:
                stream.close(reset=False)
    figures.append(
        (
            f"threads with {OPEN_STREAMS} streams open {served.spec.name:18}",
            f"{before['threads']}->{during['threads']}",
        )
    )
