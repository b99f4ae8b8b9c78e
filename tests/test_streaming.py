"""
Every kind of source, served through Django's real ASGIHandler and
WSGIHandler: events flow one by one, endlessly, with heartbeats, and closing
the response closes the source.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from django.http import HttpRequest

from sse_response import IDLE, EventStreamHttpResponse, end_all_streams
from tests.support import (
    GATE,
    PROTOCOLS,
    SOURCE_KINDS,
    Probe,
    Script,
    Step,
    make_source,
    wait_for_event,
)

pytestmark = pytest.mark.asyncio

Serve = Callable[..., str]


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SOURCE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def respond(
    kind: str, script: Script, probe: Probe, **kwargs: Any
) -> Callable[[HttpRequest], EventStreamHttpResponse]:
    def factory(request: HttpRequest) -> EventStreamHttpResponse:
        return EventStreamHttpResponse(
            make_source(kind, script, probe), request=request, **kwargs
        )

    return factory


def first_then_gate(last_event_id: str | None) -> Iterator[Step]:
    yield {"id": "1", "data": "first"}
    yield GATE
    yield {"id": "2", "data": "second"}


def endless(last_event_id: str | None) -> Iterator[Step]:
    start = int(last_event_id or 0) + 1
    for n in itertools.count(start):
        yield {"id": str(n), "event": "tick", "data": str(n)}


async def test_first_event_arrives_before_the_source_yields_the_second(
    protocol: str, kind: str, probe: Probe, serve: Serve
) -> None:
    path = serve(respond(kind, first_then_gate, probe, heartbeat=None))
    call = await PROTOCOLS[protocol](path)
    assert call.status == 200

    # The source is held back before its second event: if anything buffered
    # the first one, this read would time out.
    reading = await call.read(events=1)
    assert [event.data for event in reading.events] == ["first"]
    assert not probe.gate.is_set()

    probe.release()
    reading = await call.read_to_end()
    assert [event.data for event in reading.events] == ["first", "second"]
    assert reading.events[-1].last_event_id == "2"
    assert await wait_for_event(probe.finished)


async def test_an_endless_source_streams_and_closing_runs_its_finally(
    protocol: str, kind: str, probe: Probe, serve: Serve
) -> None:
    path = serve(respond(kind, endless, probe, heartbeat=0.05))
    call = await PROTOCOLS[protocol](path)
    reading = await call.read(events=500)
    assert [event.data for event in reading.events[:500]] == [
        str(n) for n in range(1, 501)
    ]
    assert not probe.finished.is_set()

    await call.disconnect()
    assert await wait_for_event(probe.finished, 2.0)


async def test_last_event_id_resumes_the_stream(
    protocol: str, kind: str, probe: Probe, serve: Serve
) -> None:
    path = serve(respond(kind, endless, probe, heartbeat=0.05))
    call = await PROTOCOLS[protocol](path, headers={"Last-Event-ID": "41"})
    reading = await call.read(events=2)
    await call.disconnect()
    if kind.endswith("callable"):
        assert probe.called_with == ["41"]
        assert [event.data for event in reading.events[:2]] == ["42", "43"]
    else:
        # An iterable was built before the request was seen: it starts over.
        assert [event.data for event in reading.events[:2]] == ["1", "2"]


async def test_a_heartbeat_goes_out_while_the_source_is_idle(
    protocol: str, kind: str, probe: Probe, serve: Serve
) -> None:
    path = serve(respond(kind, first_then_gate, probe, heartbeat=0.05))
    call = await PROTOCOLS[protocol](path)
    reading = await call.read(events=1)
    reading = await call.read(comments=2)
    assert reading.comments[:2] == ["", ""]
    assert len(reading.events) == 1
    # A heartbeat is a comment line and nothing else: no blank line that a
    # lax client could take for an event.
    assert b":\n" in reading.chunks[1:]
    assert b":\n\n" not in reading.body
    await call.disconnect()
    probe.release()
    assert await wait_for_event(probe.finished)


async def test_head_never_starts_the_source(
    protocol: str, kind: str, probe: Probe, serve: Serve
) -> None:
    path = serve(respond(kind, endless, probe))
    call = await PROTOCOLS[protocol](path, method="HEAD")
    reading = await call.read_to_end()
    assert call.status == 200
    assert ("Content-Type", "text/event-stream") in call.headers
    assert reading.body == b""
    assert not probe.started.is_set()
    assert probe.called_with == []


def refused_after_one(last_event_id: str | None) -> Iterator[Step]:
    yield {"id": "1", "data": "fine"}
    yield {"id": "2\ndata: injected", "data": "never sent"}
    yield {"id": "3", "data": "never reached"}


async def test_a_refused_message_ends_the_stream_cleanly_and_is_logged(
    protocol: str,
    kind: str,
    probe: Probe,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = serve(respond(kind, refused_after_one, probe, heartbeat=None))
    with caplog.at_level(logging.ERROR, logger="sse_response"):
        call = await PROTOCOLS[protocol](path)
        reading = await call.read_to_end()
        assert await wait_for_event(probe.finished)
    assert [event.data for event in reading.events] == ["fine"]
    assert b"injected" not in reading.body
    assert probe.yielded == 2
    [record] = [r for r in caplog.records if r.name == "sse_response"]
    assert record.exc_info is not None
    assert "Invalid 'id'" in str(record.exc_info[1])


async def test_an_exception_in_the_source_ends_the_stream_cleanly_and_is_logged(
    protocol: str,
    kind: str,
    probe: Probe,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing(last_event_id: str | None) -> Iterator[Step]:
        yield {"data": "before"}
        raise LookupError("the source broke")

    path = serve(respond(kind, failing, probe, heartbeat=None))
    with caplog.at_level(logging.ERROR, logger="sse_response"):
        call = await PROTOCOLS[protocol](path)
        reading = await call.read_to_end()
    assert [event.data for event in reading.events] == ["before"]
    [record] = [r for r in caplog.records if r.name == "sse_response"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], LookupError)


async def test_max_duration_ends_the_stream_with_a_retry_hint(
    protocol: str, probe: Probe, serve: Serve
) -> None:
    path = serve(
        respond(
            "async_callable",
            first_then_gate,
            probe,
            heartbeat=None,
            max_duration=0.2,
            end_retry_ms=250,
        )
    )
    call = await PROTOCOLS[protocol](path)
    reading = await call.read_to_end()
    assert [event.data for event in reading.events] == ["first"]
    assert reading.parser.retry == 250
    assert reading.body.endswith(b"retry: 250\n")
    assert await wait_for_event(probe.finished)


async def test_end_all_streams_ends_every_open_stream(
    protocol: str, serve: Serve
) -> None:
    probes = [Probe() for _ in range(3)]
    calls = []
    try:
        for number, probe in enumerate(probes):
            kind = SOURCE_KINDS[number % len(SOURCE_KINDS)]
            path = serve(respond(kind, first_then_gate, probe, heartbeat=None))
            call = await PROTOCOLS[protocol](path)
            await call.read(events=1)
            calls.append(call)

        assert end_all_streams(retry_ms=4321) >= len(calls)

        for call, probe in zip(calls, probes, strict=True):
            reading = await call.read_to_end()
            assert reading.parser.retry == 4321
            assert [event.data for event in reading.events] == ["first"]
            probe.release()
            assert await wait_for_event(probe.finished)
    finally:
        for probe in probes:
            probe.release()


async def test_every_kind_of_source_runs_off_the_event_loop_thread(
    kind: str, probe: Probe, serve: Serve
) -> None:
    """Sync sources get a pump thread; async ones run on the server's loop."""
    path = serve(respond(kind, first_then_gate, probe, heartbeat=None))
    call = await PROTOCOLS["asgi"](path)
    await call.read(events=1)
    probe.release()
    await call.read_to_end()
    if kind.startswith("sync"):
        assert probe.thread_names == {"sse_response pump"}
    else:
        assert probe.thread_names == {"MainThread"}


@pytest.mark.parametrize(
    "source_factory",
    [
        pytest.param(
            lambda messages: lambda last_event_id: _aiter(messages),
            id="sync callable returning an async iterator",
        ),
        pytest.param(
            lambda messages: _returning(iter(messages)),
            id="coroutine function returning a sync iterator",
        ),
        pytest.param(
            lambda messages: _returning(_aiter(messages)),
            id="coroutine function returning an async iterator",
        ),
        pytest.param(lambda messages: messages, id="a list"),
    ],
)
async def test_callables_may_return_either_kind_of_iterator(
    protocol: str, serve: Serve, source_factory: Callable[[list[Any]], Any]
) -> None:
    messages = [{"data": "a"}, {"data": "b"}]
    path = serve(
        lambda request: EventStreamHttpResponse(
            source_factory(messages), request=request
        )
    )
    call = await PROTOCOLS[protocol](path)
    reading = await call.read_to_end()
    assert [event.data for event in reading.events] == ["a", "b"]


async def _aiter(messages: list[Any]) -> Any:
    for message in messages:
        yield message


def _returning(value: Any) -> Callable[[str | None], Any]:
    async def function(last_event_id: str | None) -> Any:
        await asyncio.sleep(0)
        return value

    return function


class PollingSource:
    """
    A source that polls: after its first event it finds nothing new, round
    after round, and yields IDLE (or, for comparison, None) after each.
    """

    ROUNDS = 1000
    PAUSE = 0.005

    def __init__(self, kind: str, nothing: object) -> None:
        self.kind = kind
        self.nothing = nothing
        self.rounds = 0
        self.enough_rounds = threading.Event()
        self.finished = threading.Event()

    def _round(self) -> None:
        self.rounds += 1
        if self.rounds >= 40:
            self.enough_rounds.set()

    def sync(self) -> Iterator[Any]:
        try:
            yield {"data": "first"}
            for _ in range(self.ROUNDS):
                time.sleep(self.PAUSE)
                self._round()
                yield self.nothing
        finally:
            self.finished.set()

    async def async_(self) -> AsyncIterator[Any]:
        try:
            yield {"data": "first"}
            for _ in range(self.ROUNDS):
                await asyncio.sleep(self.PAUSE)
                self._round()
                yield self.nothing
        finally:
            self.finished.set()

    def source(self) -> Any:
        return self.sync() if self.kind == "sync" else self.async_()


@pytest.mark.parametrize("source_kind", ["sync", "async"])
async def test_idle_sends_nothing_and_lets_the_stream_close_within_a_round(
    protocol: str, source_kind: str, serve: Serve
) -> None:
    polling = PollingSource(source_kind, IDLE)
    # Under WSGI the server learns of a disconnect when a write fails, so
    # heartbeats must go on (IDLE is no message: they come on time).
    path = serve(
        lambda request: EventStreamHttpResponse(
            polling.source(), request=request, heartbeat=0.1
        )
    )
    call = await PROTOCOLS[protocol](path)
    reading = await call.read(events=1)
    assert await wait_for_event(polling.enough_rounds)
    await call.read(comments=1)
    # 40 rounds or more, and only the heartbeats of their time (a comment
    # per round is what yielding None does, below).
    assert len(reading.comments) < polling.rounds / 4
    assert [event.data for event in reading.events] == ["first"]

    await call.disconnect()
    rounds = polling.rounds
    assert await wait_for_event(polling.finished)
    # Closed at its next round, not at the end of its thousand.
    assert polling.rounds <= rounds + 3


async def test_none_still_writes_a_comment_as_in_djblets(serve: Serve) -> None:
    polling = PollingSource("sync", None)
    path = serve(
        lambda request: EventStreamHttpResponse(
            polling.source(), request=request, heartbeat=None
        )
    )
    call = await PROTOCOLS["asgi"](path)
    await call.read(events=1)
    reading = await call.read(comments=20)
    assert reading.comments[:20] == [""] * 20
    await call.disconnect()
    assert await wait_for_event(polling.finished)
