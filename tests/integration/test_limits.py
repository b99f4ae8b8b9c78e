"""
Limits: a stream's lifetime, the number of sync streams a process holds, and
what a client that stops reading may cost.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest

from sse_response.testing import EventStreamParser
from tests.integration.clients import RawStream, Stream, token, wait_for
from tests.integration.conftest import Served, ServerFactory
from tests.integration.servers import SERVERS


@pytest.mark.parametrize("served", list(SERVERS), indirect=True)
@pytest.mark.parametrize("kind", ["sync_iter", "async_iter"])
@pytest.mark.timeout(30)
def test_max_duration_ends_the_stream_with_a_retry_hint(
    served: Served, kind: str
) -> None:
    t = token()
    url = served.url(f"/stream/{kind}/?token={t}&interval=0.05&max_duration=0.5")
    started = time.monotonic()
    with Stream(served.client, url) as stream:
        events = stream.rest()
    took = time.monotonic() - started
    assert stream.ended
    assert stream.parser.retry == 1000
    assert len(events) >= 3
    assert 0.5 <= took < 2.0
    served.reports.wait_finally(t, 5)


async def _read_stream(port: int, path: str, counts: list[int], i: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        parser = EventStreamParser()
        while chunk := await reader.read(65536):
            counts[i] += len(parser.feed(chunk))
    finally:
        writer.transport.abort()


STREAMS = 100
INTERVAL = 0.1
WINDOW = 3.0


@pytest.mark.parametrize("name", ["uvicorn-httptools", "hypercorn", "daphne"])
@pytest.mark.timeout(60)
def test_sync_streams_starve_neither_each_other_nor_plain_views(
    name: str, start_server: ServerFactory, figures: list[tuple[str, str]]
) -> None:
    server = start_server.start(name)

    async def run() -> tuple[list[int], list[float]]:
        counts = [0] * STREAMS
        path = f"/stream/sync_iter/?interval={INTERVAL}"
        readers = [
            asyncio.create_task(_read_stream(server.port, path, counts, i))
            for i in range(STREAMS)
        ]
        latencies: list[float] = []
        try:
            async with httpx.AsyncClient() as client:
                deadline = time.monotonic() + 10
                while min(counts) == 0:  # every stream has started
                    assert time.monotonic() < deadline, counts
                    await asyncio.sleep(0.05)
                before = list(counts)
                end = time.monotonic() + WINDOW
                while time.monotonic() < end:
                    sent = time.perf_counter()
                    response = await client.get(server.url("/plain/"))
                    latencies.append(time.perf_counter() - sent)
                    assert response.text == "ok"
                    await asyncio.sleep(0.01)
            assert not any(reader.done() for reader in readers)
            return [n - b for n, b in zip(counts, before, strict=True)], latencies
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    got, latencies = asyncio.run(run())
    p99 = statistics.quantiles(latencies, n=100)[98]
    expected = WINDOW / INTERVAL
    figures.append(
        (
            f"capacity {name:18} {STREAMS} sync streams",
            f"events per stream in {WINDOW:.0f} s: min {min(got)}, median "
            f"{statistics.median(got):.0f} (ideal {expected:.0f}); plain view p50 "
            f"{statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
            f"over {len(latencies)} requests",
        )
    )
    assert min(got) >= expected / 2
    # The bound of the issue holds on uvicorn, the recommended server; the
    # others are measured, under a looser bound (they spend more CPU per event,
    # and the client shares the 2 cores).
    assert p99 < (0.1 if name == "uvicorn-httptools" else 0.5)


@pytest.mark.timeout(60)
def test_sync_streams_past_the_cap_are_refused_with_a_retry_hint(
    start_server: ServerFactory,
) -> None:
    server = start_server.start(
        "uvicorn-httptools", env={"SSE_IT_MAX_SYNC_STREAMS": "5"}
    )
    tokens = [token() for _ in range(6)]
    held = [
        RawStream(server.port, f"/stream/sync_iter/?token={t}&hold=1")
        for t in tokens[:5]
    ]
    try:
        for stream in held:
            assert stream.next_event().data == "1"
        with (
            httpx.Client() as client,
            Stream(client, server.url("/stream/sync_iter/")) as refused,
        ):
            assert refused.response.status_code == 200
            assert refused.rest() == []
            assert refused.parser.retry == 1000
        # An async stream is not counted.
        with (
            httpx.Client() as client,
            Stream(client, server.url("/stream/async_iter/?count=1")) as other,
        ):
            assert [e.data for e in other.rest()] == ["1"]
    finally:
        for t in tokens:
            (server.state / f"{t}.go").touch()
        for stream in held:
            stream.close(reset=True)
    assert "SSE_RESPONSE_MAX_SYNC_STREAMS" in server.log_text()


SIZE = 16 * 1024
SEND_TIMEOUT = 1.0
#: How many bytes a source may get ahead of a client that reads nothing: the
#: outbox (64 KiB) plus what the server and the kernel buffer.
AHEAD_BOUND = 16 * 1024 * 1024


def _rss_kb(client: httpx.Client, served: Served) -> Any:
    return client.get(served.url("/status/")).json()["rss_kb"]


NO_BACK_PRESSURE = pytest.mark.xfail(
    strict=True,
    reason="daphne's send() never waits for the client, so the outbox never "
    "fills: the source runs ahead of a stalled client without bound",
)


@pytest.mark.parametrize("served", list(SERVERS), indirect=True)
@pytest.mark.parametrize("kind", ["sync_iter", "async_iter"])
@pytest.mark.timeout(40)
def test_a_client_that_stops_reading_costs_bounded_memory(
    served: Served,
    kind: str,
    figures: list[tuple[str, str]],
    request: pytest.FixtureRequest,
) -> None:
    if served.spec.name == "daphne":
        request.applymarker(NO_BACK_PRESSURE)
    # Under WSGI an async source's loop runs in the server's thread, which is
    # blocked in the socket write: the source is paused, not closed, until
    # the client goes away (docs/deployment.md, "Slow clients").
    paused_until_gone = not served.spec.asgi and kind == "async_iter"
    t = token()
    # At most 16 MiB/s, so that a server without back-pressure stays usable.
    path = (
        f"/stream/{kind}/?token={t}&size={SIZE}&interval=0.001"
        f"&send_timeout={SEND_TIMEOUT}"
    )
    with httpx.Client() as client:
        rss_before = _rss_kb(client, served)
        with RawStream(served.server.port, path, receive_buffer=4096) as stalled:
            assert stalled.next_event().data.startswith("1.")
            stalled_at = time.time()
            # The client reads nothing more; send_timeout should end the stream.
            try:
                ran = served.reports.wait_finally(t, SEND_TIMEOUT + 3)
                closed_after = f"{ran.at - stalled_at:.2f} s"
            except AssertionError:
                closed_after = "never (until the client went away)"
            rss_during = _rss_kb(client, served)
            gone_at = time.time()
            stalled.close(reset=True)
        ran = served.reports.wait_finally(t, 10)
    ahead = ran.sent * SIZE
    grown = rss_during - rss_before
    figures.append(
        (
            f"slow client {served.spec.name:18} {kind:10}",
            f"source closed after {closed_after}, {ahead / 1024 / 1024:.1f} MiB "
            f"yielded, RSS {grown:+d} KiB",
        )
    )
    assert ahead <= AHEAD_BOUND
    if served.spec.name != "gunicorn-sync":  # /status/ may be another process
        assert grown <= 64 * 1024
    if paused_until_gone:
        assert ran.at >= gone_at
    else:
        assert ran.at - stalled_at <= SEND_TIMEOUT + 3


def test_wait_for_is_bounded() -> None:
    with pytest.raises(AssertionError, match="timed out"):
        wait_for(lambda: None, 0.05, "nothing")
