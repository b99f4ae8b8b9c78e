"""
The signals of a stream's life (sse_response.signals), served through
Django's real ASGIHandler and WSGIHandler: stream_started and
stream_finished with the reason each way of ending gives, stream_reset, and
receivers that fail or are async.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import override_settings

from sse_response import IDLE, EventStreamHttpResponse, end_all_streams, signals
from sse_response.body import EventStreamBody
from sse_response.encoding import encode
from tests.support import PROTOCOLS, WAIT

pytestmark = pytest.mark.asyncio

Serve = Callable[..., str]


class Recorder:
    """What the stream signals were sent with."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.finished: list[dict[str, Any]] = []
        self.resets: list[dict[str, Any]] = []

    def on_started(self, **kwargs: Any) -> None:
        self.started.append(kwargs)

    def on_finished(self, **kwargs: Any) -> None:
        self.finished.append(kwargs)

    def on_reset(self, **kwargs: Any) -> None:
        self.resets.append(kwargs)

    async def finished_one(self, path: str) -> dict[str, Any]:
        """Wait for the stream_finished of the stream of ``path``."""
        deadline = time.monotonic() + WAIT
        while True:
            for sent in self.finished:
                if sent["request"] is not None and sent["request"].path == path:
                    return sent
            assert time.monotonic() < deadline, "stream_finished never came"
            await asyncio.sleep(0.01)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    signals.stream_started.connect(recorder.on_started)
    signals.stream_finished.connect(recorder.on_finished)
    signals.stream_reset.connect(recorder.on_reset)
    try:
        yield recorder
    finally:
        signals.stream_started.disconnect(recorder.on_started)
        signals.stream_finished.disconnect(recorder.on_finished)
        signals.stream_reset.disconnect(recorder.on_reset)


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def responding(
    source: Callable[[], Any], **kwargs: Any
) -> Callable[[HttpRequest], EventStreamHttpResponse]:
    def factory(request: HttpRequest) -> EventStreamHttpResponse:
        return EventStreamHttpResponse(source(), request=request, **kwargs)

    return factory


def events(n: int) -> Callable[[], Iterator[Any]]:
    def source() -> Iterator[Any]:
        for i in range(n):
            yield {"id": str(i), "data": str(i)}
            yield None  # a comment: not an event
            yield IDLE

    return source


def endless_async() -> AsyncIterator[Any]:
    async def source() -> AsyncIterator[Any]:
        n = 0
        while True:
            n += 1
            yield {"data": str(n)}
            await asyncio.sleep(0.01)

    return source()


async def test_a_stream_that_completes(
    protocol: str, serve: Serve, recorder: Recorder
) -> None:
    path = serve(responding(events(3), heartbeat=None))
    call = await PROTOCOLS[protocol](path)
    reading = await call.read_to_end()
    finished = await recorder.finished_one(path)
    assert [s["request"].path for s in recorder.started] == [path]
    assert recorder.started[0]["sender"] is EventStreamHttpResponse
    assert finished["sender"] is EventStreamHttpResponse
    assert finished["reason"] == "completed"
    assert finished["events"] == 3
    assert finished["bytes_sent"] == len(reading.body)
    assert finished["duration"] >= 0


async def test_a_client_that_leaves(
    protocol: str, serve: Serve, recorder: Recorder
) -> None:
    path = serve(responding(endless_async, heartbeat=0.05))
    call = await PROTOCOLS[protocol](path)
    await call.read(events=3)
    await call.disconnect()
    finished = await recorder.finished_one(path)
    assert finished["reason"] == "client_left"
    assert finished["events"] >= 3


async def test_max_duration(protocol: str, serve: Serve, recorder: Recorder) -> None:
    path = serve(responding(endless_async, max_duration=0.2))
    call = await PROTOCOLS[protocol](path)
    await call.read_to_end()
    assert (await recorder.finished_one(path))["reason"] == "max_duration"


async def test_shutdown(protocol: str, serve: Serve, recorder: Recorder) -> None:
    path = serve(responding(endless_async))
    call = await PROTOCOLS[protocol](path)
    await call.read(events=1)
    assert end_all_streams() >= 1
    await call.read_to_end()
    assert (await recorder.finished_one(path))["reason"] == "shutdown"


async def test_a_source_that_fails(
    protocol: str,
    serve: Serve,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing() -> Iterator[Any]:
        yield {"data": "one"}
        raise RuntimeError("boom")

    path = serve(responding(failing))
    call = await PROTOCOLS[protocol](path)
    with caplog.at_level(logging.CRITICAL, "sse_response"):
        await call.read_to_end()
        assert (await recorder.finished_one(path))["reason"] == "error"


async def test_a_refused_sync_source(
    protocol: str, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    path = serve(responding(events(1)))
    with (
        override_settings(SSE_RESPONSE_MAX_SYNC_STREAMS=0),
        caplog.at_level(logging.CRITICAL, "sse_response"),
    ):
        call = await PROTOCOLS[protocol](path)
        await call.read_to_end()
    assert (await recorder.finished_one(path))["reason"] == "refused"


async def test_a_source_reports_why_it_ends_and_sees_its_request(
    protocol: str, serve: Serve, recorder: Recorder
) -> None:
    seen: list[str | None] = []

    async def source() -> AsyncIterator[Any]:
        request = signals.current_request()
        seen.append(None if request is None else request.path)
        await signals.asend_stream_reset(["orders", "news"])
        yield {"retry_ms": 1000}
        signals.report_end("too_slow")

    def sync_source() -> Iterator[Any]:
        request = signals.current_request()
        seen.append(None if request is None else request.path)
        yield {"data": "x"}
        signals.report_end("ended")

    path = serve(responding(source))
    call = await PROTOCOLS[protocol](path)
    await call.read_to_end()
    assert (await recorder.finished_one(path))["reason"] == "too_slow"
    assert seen == [path]
    assert recorder.resets == [
        {
            "signal": signals.stream_reset,
            "sender": None,
            "channels": ["orders", "news"],
            "request": recorder.started[0]["request"],
        }
    ]

    sync_path = serve(responding(sync_source))
    call = await PROTOCOLS[protocol](sync_path)
    await call.read_to_end()
    assert (await recorder.finished_one(sync_path))["reason"] == "ended"
    assert seen == [path, sync_path]


async def test_report_end_outside_a_stream_and_with_an_unknown_reason() -> None:
    signals.report_end("ended")  # nothing to tell: no error
    assert signals.current_request() is None
    with pytest.raises(ValueError, match="reason must be one of"):
        signals.report_end("bored")


async def test_head_sends_no_signal(serve: Serve, recorder: Recorder) -> None:
    path = serve(responding(events(1)))
    call = await PROTOCOLS["asgi"](path, method="HEAD")
    await call.read_to_end()
    await asyncio.sleep(0.05)
    assert recorder.started == recorder.finished == []


async def test_a_failing_receiver_is_logged_and_an_async_one_awaited(
    protocol: str,
    serve: Serve,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    awaited: list[str] = []

    def failing(**kwargs: Any) -> None:
        raise RuntimeError("receiver failed")

    async def async_receiver(**kwargs: Any) -> None:
        await asyncio.sleep(0)
        awaited.append(kwargs["reason"])

    signals.stream_started.connect(failing)
    signals.stream_finished.connect(async_receiver)
    try:
        path = serve(responding(events(2)))
        with caplog.at_level(logging.ERROR, "sse_response"):
            call = await PROTOCOLS[protocol](path)
            reading = await call.read_to_end()
            await recorder.finished_one(path)
    finally:
        signals.stream_started.disconnect(failing)
        signals.stream_finished.disconnect(async_receiver)
    assert [event.data for event in reading.events] == ["0", "1"]
    assert awaited == ["completed"]
    assert "A receiver of an sse_response signal failed." in caplog.text


async def test_a_client_too_slow(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """send_timeout: the consumer stops taking, the source is closed."""
    big = {"data": "x" * 16384}

    def flood() -> Iterator[Any]:
        while True:
            yield big

    body = EventStreamBody(
        flood(),
        last_event_id=None,
        encode=encode,
        send_timeout=0.2,
        sender=EventStreamHttpResponse,
    )
    chunks = aiter(body)
    with caplog.at_level(logging.CRITICAL, "sse_response"):
        assert await anext(chunks) == b""
        await anext(chunks)
        await asyncio.sleep(0.6)  # takes nothing: the outbox fills
        async for _ in chunks:
            pass
    assert [s["reason"] for s in recorder.finished] == ["too_slow"]
    assert recorder.finished[0]["request"] is None
