"""
EventStreamHttpResponse as Django code sees it: headers, middleware, the
djblets API, Django's test clients, closing, and the limits on sources.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.middleware.gzip import GZipMiddleware
from django.test import AsyncClient, Client, override_settings
from django.test.client import RequestFactory

from sse_response import (
    EventStreamHttpResponse,
    EventStreamMessage,
    EventStreamMessages,
    InvalidMessageError,
    NoRequestWarning,
)
from sse_response.pumps import open_sync_streams
from sse_response.testing import ServerSentEvent, aread_stream, parse, read_stream
from tests.support import GATE, PROTOCOLS, WAIT, Probe, make_source, wait_for_event

Serve = Callable[..., str]


def five_messages() -> Iterator[EventStreamMessage]:
    return (
        {
            "data": f"This is message {i}.",
            "event": "update",
            "id": f"id-{i}",
            "retry_ms": 123,
        }
        for i in range(5)
    )


ALL_FIELDS = b"".join(
    b"id: id-%d\nevent: update\ndata: This is message %d.\nretry: 123\n\n" % (i, i)
    for i in range(5)
)


class TestDjbletsBehaviours:
    """djblets' seven tests, as bytes (joined: ready events may share a chunk)."""

    def test_with_generator(self) -> None:
        response = EventStreamHttpResponse(
            {"data": b"This is message %d." % i} for i in range(5)
        )
        assert b"".join(response) == b"".join(
            b"data: This is message %d.\n\n" % i for i in range(5)
        )

    def test_with_callable(self) -> None:
        seen: list[str | None] = []

        def messages(last_id: str | None) -> EventStreamMessages:
            seen.append(last_id)
            return ({"data": f"This is message {i}."} for i in range(5))

        # djblets' test passed no request; here that warns (NoRequestWarning).
        response = EventStreamHttpResponse(messages, request=None)
        assert parse(b"".join(response)) == [
            ServerSentEvent(f"This is message {i}.") for i in range(5)
        ]
        assert seen == [None]

    def test_with_all_fields(self) -> None:
        assert b"".join(EventStreamHttpResponse(five_messages())) == ALL_FIELDS

    def test_with_blank_id(self) -> None:
        response = EventStreamHttpResponse(
            {"id": "", "data": f"test {i}"} for i in range(2)
        )
        body = b"".join(response)
        # djblets wrote "id"; "id:" reads the same (P7) and is plainer.
        assert body == b"id:\ndata: test 0\n\nid:\ndata: test 1\n\n"
        assert [event.last_event_id for event in parse(body)] == ["", ""]

    def test_with_multiline_data(self) -> None:
        messages: Iterator[EventStreamMessage] = (
            {"data": "".join(f"this is line {j + 1}\n" for j in range(i + 1))}
            for i in range(3)
        )
        response = EventStreamHttpResponse(messages)
        events = parse(b"".join(response))
        # Unlike djblets, the trailing newline is data and survives.
        assert [event.data for event in events] == [
            "this is line 1\n",
            "this is line 1\nthis is line 2\n",
            "this is line 1\nthis is line 2\nthis is line 3\n",
        ]

    def test_with_last_event_id(self) -> None:
        def messages(last_id: str | None) -> EventStreamMessages:
            assert last_id == "3"
            return ({"data": f"This is message {i}."} for i in range(int(last_id), 5))

        request = RequestFactory().get("/", HTTP_LAST_EVENT_ID="3")
        response = EventStreamHttpResponse(messages, request=request)
        assert b"".join(response) == (
            b"data: This is message 3.\n\ndata: This is message 4.\n\n"
        )

    def test_with_gzip_middleware(self) -> None:
        # djblets' test never asked for gzip; this one does.
        middleware = GZipMiddleware(
            lambda request: EventStreamHttpResponse(five_messages(), request=request)
        )
        response = middleware(RequestFactory().get("/", HTTP_ACCEPT_ENCODING="gzip"))
        assert isinstance(response, StreamingHttpResponse)
        assert b"".join(response) == ALL_FIELDS
        assert response.get("Content-Encoding") == ""


class TestHeaders:
    async def test_defaults_and_no_empty_content_encoding_on_the_wire(
        self, serve: Serve
    ) -> None:
        for protocol in PROTOCOLS:
            path = serve(
                lambda request: EventStreamHttpResponse(
                    [{"data": "x"}], request=request
                )
            )
            call = await PROTOCOLS[protocol](path)
            headers = dict(call.headers)
            assert headers["Content-Type"] == "text/event-stream"
            assert headers["Cache-Control"] == "no-cache"
            assert headers["X-Accel-Buffering"] == "no"
            assert "Content-Encoding" not in headers
            assert "Connection" not in headers
            await call.read_to_end()

    def test_headers_given_by_the_caller_win(self) -> None:
        response = EventStreamHttpResponse(
            [],
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "yes"},
            status=201,
            content_type="text/event-stream; charset=utf-8",
        )
        assert response["Cache-Control"] == "no-store"
        assert response["X-Accel-Buffering"] == "yes"
        assert response.status_code == 201
        assert response["Content-Type"] == "text/event-stream; charset=utf-8"

    @pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
    async def test_gzip_middleware_neither_buffers_nor_compresses(
        self, protocol: str, probe: Probe, serve: Serve
    ) -> None:
        def script(last_event_id: str | None) -> Iterator[Any]:
            yield {"data": "first " * 100}
            yield GATE
            yield {"data": "second"}

        path = serve(
            lambda request: EventStreamHttpResponse(
                make_source("async_iterator", script, probe),
                request=request,
                heartbeat=None,
            )
        )
        middleware = ["django.middleware.gzip.GZipMiddleware"]
        with override_settings(MIDDLEWARE=middleware):
            call = await PROTOCOLS[protocol](path, headers={"Accept-Encoding": "gzip"})
            reading = await call.read(events=1)
            probe.release()
            reading = await call.read_to_end()
        assert "Content-Encoding" not in dict(call.headers)
        assert [event.data for event in reading.events] == ["first " * 100, "second"]
        with pytest.raises(gzip.BadGzipFile):
            gzip.decompress(reading.body)


class TestLastEventId:
    @pytest.mark.parametrize(
        ("path", "headers", "expected"),
        [
            ("/?lastEventId=7", {}, "7"),
            ("/?lastEventId=7", {"Last-Event-ID": "9"}, "9"),
            ("/", {}, None),
        ],
    )
    def test_header_then_query_parameter(
        self, path: str, headers: dict[str, str], expected: str | None
    ) -> None:
        seen: list[str | None] = []

        def messages(last_id: str | None) -> list[Any]:
            seen.append(last_id)
            return []

        request = RequestFactory().get(path, headers=headers)
        b"".join(EventStreamHttpResponse(messages, request=request))
        assert seen == [expected]

    def test_the_callable_is_not_called_at_construction(self) -> None:
        calls: list[str | None] = []

        def messages(last_id: str | None) -> EventStreamMessages:
            calls.append(last_id)
            return []

        response = EventStreamHttpResponse(messages, request=None)
        assert calls == []
        response.close()
        assert calls == []


class TestConstruction:
    @pytest.mark.parametrize("source", [None, 5, object()])
    def test_a_source_that_is_neither_iterable_nor_callable_is_refused(
        self, source: Any
    ) -> None:
        with pytest.raises(TypeError, match="event_stream must be"):
            EventStreamHttpResponse(source)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"heartbeat": 0},
            {"heartbeat": -1},
            {"heartbeat": "15"},
            {"max_duration": 0},
            {"send_timeout": True},
            {"end_retry_ms": -1},
            {"end_retry_ms": 1.5},
        ],
    )
    def test_bad_settings_are_refused_naming_them(self, kwargs: dict[str, Any]) -> None:
        [name] = kwargs
        with pytest.raises(ValueError, match=name):
            EventStreamHttpResponse([], **kwargs)

    def test_a_callable_returning_something_else_ends_the_stream_with_an_error(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="sse_response"):
            not_messages: Any = lambda last_id: 5  # noqa: E731
            response = EventStreamHttpResponse(not_messages, request=None)
            assert b"".join(response) == b""
        assert "must return an iterable" in caplog.text


class TestIteration:
    def test_a_stream_iterates_only_once(self) -> None:
        response = EventStreamHttpResponse([{"data": "x"}])
        assert b"".join(response) == b"data: x\n\n"
        with pytest.raises(RuntimeError, match="only once"):
            b"".join(response)

    async def test_plain_for_inside_an_event_loop_is_refused(self) -> None:
        response = EventStreamHttpResponse([{"data": "x"}])
        with pytest.raises(RuntimeError, match="async for"):
            iter(response)
        # The first chunk is empty, so that servers send the headers at once.
        assert [chunk async for chunk in response] == [b"", b"data: x\n\n"]

    async def test_is_async_answers_for_the_caller(self) -> None:
        response = EventStreamHttpResponse([])
        assert response.is_async is True
        assert await asyncio.to_thread(lambda: response.is_async) is False
        response.close()

    def test_middleware_may_wrap_the_content(self) -> None:
        response = EventStreamHttpResponse([{"data": "x"}])
        response.streaming_content = (
            chunk.upper() for chunk in response.streaming_content
        )
        assert b"".join(response) == b"DATA: X\n\n"


class TestClose:
    @pytest.mark.parametrize(
        "kind", ["async_iterator", "async_callable", "sync_iterator"]
    )
    def test_close_between_chunks_runs_the_finally_before_it_returns(
        self, kind: str, probe: Probe
    ) -> None:
        """As a WSGI server does: iterate in this thread, then close."""

        def endless(last_event_id: str | None) -> Iterator[Any]:
            n = 0
            while True:
                n += 1
                yield {"data": str(n)}

        response = EventStreamHttpResponse(
            make_source(kind, endless, probe), request=None
        )
        chunks = iter(response)
        assert next(chunks) == b""
        assert next(chunks).startswith(b"data: 1\n\n")
        response.close()
        assert probe.finished.is_set()

    def test_close_before_iterating_closes_a_sync_source(self) -> None:
        closed = threading.Event()

        def messages() -> Iterator[Any]:
            try:
                yield {"data": "never"}
            finally:
                closed.set()

        source = messages()
        next(source)  # started, so that closing it runs the finally
        EventStreamHttpResponse(source).close()
        assert closed.is_set()

    @pytest.mark.parametrize("kind", ["sync_iterator", "async_iterator"])
    async def test_close_from_another_thread_ends_an_async_iteration(
        self, kind: str, probe: Probe
    ) -> None:
        response = EventStreamHttpResponse(
            make_source(kind, lambda last: iter([{"data": "a"}, GATE]), probe),
            heartbeat=None,
        )
        chunks = aiter(response)
        assert await anext(chunks) == b""
        assert await anext(chunks) == b"data: a\n\n"
        pending = asyncio.ensure_future(anext(chunks))
        await asyncio.to_thread(response.close)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, WAIT)
        probe.release()
        assert await wait_for_event(probe.finished)


async def test_closing_does_not_wait_for_a_blocked_sync_source_from_an_async_callable(
    probe: Probe,
) -> None:
    """A coroutine function may return a sync iterator, which runs in a thread."""
    messages = make_source(
        "sync_iterator", lambda last: iter([{"data": "a"}, GATE]), probe
    )

    async def source(last_event_id: str | None) -> Any:
        return messages

    response = EventStreamHttpResponse(source, request=None, heartbeat=None)
    chunks = aiter(response)
    assert await anext(chunks) == b""
    assert await anext(chunks) == b"data: a\n\n"
    # The source now blocks behind its gate; closing gives it a grace of one
    # second to reach its next yield, and does not wait for it any longer.
    await asyncio.wait_for(chunks.aclose(), WAIT)  # type: ignore[attr-defined]
    assert not probe.finished.is_set()
    probe.release()
    assert await wait_for_event(probe.finished)


class TestClients:
    """Django's test clients, with the helpers of sse_response.testing."""

    def test_client_reads_an_endless_stream(self, probe: Probe, serve: Serve) -> None:
        path = serve(
            lambda request: EventStreamHttpResponse(
                make_source("sync_callable", _counting, probe), request=request
            ),
            async_view=False,
        )
        response = Client().get(path, headers={"Last-Event-ID": "10"})
        reading = read_stream(response, events=3, timeout=WAIT)
        assert [event.data for event in reading.events] == ["11", "12", "13"]
        assert reading.last_event_id == "13"
        assert not reading.ended
        assert probe.finished.wait(WAIT)

    def test_read_stream_stops_at_its_timeout(self, probe: Probe, serve: Serve) -> None:
        path = serve(
            lambda request: EventStreamHttpResponse(
                make_source("async_iterator", lambda last: iter([GATE]), probe),
                request=request,
                heartbeat=None,
            )
        )
        reading = read_stream(Client().get(path), events=1, timeout=0.2)
        assert reading.events == []
        probe.release()
        assert probe.finished.wait(WAIT)

    async def test_async_client_reads_an_endless_stream(
        self, probe: Probe, serve: Serve
    ) -> None:
        path = serve(
            lambda request: EventStreamHttpResponse(
                make_source("async_callable", _counting, probe),
                request=request,
                heartbeat=0.05,
            )
        )
        response = await AsyncClient().get(path)
        reading = await aread_stream(response, events=3, comments=None, timeout=WAIT)
        assert [event.data for event in reading.events] == ["1", "2", "3"]
        assert await wait_for_event(probe.finished)

    async def test_async_client_reads_heartbeats(
        self, probe: Probe, serve: Serve
    ) -> None:
        path = serve(
            lambda request: EventStreamHttpResponse(
                make_source("sync_iterator", lambda last: iter([GATE]), probe),
                request=request,
                heartbeat=0.05,
            )
        )
        reading = await aread_stream(await AsyncClient().get(path), comments=2)
        assert reading.comments == ["", ""]
        probe.release()
        assert await wait_for_event(probe.finished)

    def test_head_through_the_test_client(self, probe: Probe, serve: Serve) -> None:
        path = serve(
            lambda request: EventStreamHttpResponse(
                make_source("sync_callable", _counting, probe), request=request
            )
        )
        response = Client().head(path)
        assert response.status_code == 200
        assert read_stream(response).ended
        assert not probe.started.is_set()


def _counting(last_event_id: str | None) -> Iterator[Any]:
    n = int(last_event_id or 0)
    while True:
        n += 1
        yield {"id": str(n), "data": str(n)}


class TestLimits:
    async def test_sync_streams_and_sync_views_do_not_wait_on_each_other(
        self, serve: Serve
    ) -> None:
        probes = [Probe(), Probe()]
        try:
            calls = []
            for probe in probes:
                path = serve(
                    lambda request, probe=probe: EventStreamHttpResponse(
                        make_source(
                            "sync_iterator",
                            lambda last: iter([{"data": "a"}, GATE]),
                            probe,
                        ),
                        request=request,
                        heartbeat=None,
                    )
                )
                call = await PROTOCOLS["asgi"](path)
                await call.read(events=1)
                calls.append(call)
            # Both sources block in their threads; Django's thread-sensitive
            # executor is still free for an ordinary sync view.
            plain = await PROTOCOLS["asgi"]("/plain/")
            assert (await plain.read_to_end()).body == b"plain"
            assert open_sync_streams() >= 2
            for call in calls:
                await call.disconnect()
        finally:
            for probe in probes:
                probe.release()

    async def test_past_the_sync_stream_limit_a_stream_is_refused_with_a_retry_hint(
        self, probe: Probe, caplog: pytest.LogCaptureFixture
    ) -> None:
        with (
            override_settings(SSE_RESPONSE_MAX_SYNC_STREAMS=0),
            caplog.at_level(logging.WARNING, logger="sse_response"),
        ):
            response = EventStreamHttpResponse(
                make_source("sync_iterator", _counting, probe), end_retry_ms=5000
            )
            body = b"".join([chunk async for chunk in response])
        assert body == b"retry: 5000\n"
        assert "SSE_RESPONSE_MAX_SYNC_STREAMS" in caplog.text
        assert not probe.started.is_set()

    @pytest.mark.parametrize("kind", ["sync_iterator", "async_iterator"])
    async def test_a_client_that_takes_nothing_gets_its_source_closed(
        self, kind: str, probe: Probe, caplog: pytest.LogCaptureFixture
    ) -> None:
        response = EventStreamHttpResponse(
            make_source(kind, _counting, probe), send_timeout=0.2
        )
        chunks = aiter(response)
        with caplog.at_level(logging.WARNING, logger="sse_response"):
            assert await anext(chunks) == b""
            # The client stalls: the outbox fills, the source waits, and
            # after send_timeout it is closed.
            assert await wait_for_event(probe.finished)
        assert "took nothing" in caplog.text
        yielded = probe.yielded
        rest = [chunk async for chunk in chunks]
        assert rest == []
        assert probe.yielded == yielded


async def test_async_views_and_sync_views_both_serve_streams(serve: Serve) -> None:
    for async_view in (True, False):
        path = serve(
            lambda request: EventStreamHttpResponse([{"data": "x"}], request=request),
            async_view=async_view,
        )
        for protocol in PROTOCOLS:
            call = await PROTOCOLS[protocol](path)
            assert parse((await call.read_to_end()).body) == [ServerSentEvent("x")]


class TestWhatCanNeverBeAStream:
    @pytest.mark.parametrize(
        "source",
        ["data: hello", b"data: hello", {"data": "hello"}],
        ids=["str", "bytes", "dict"],
    )
    def test_text_bytes_and_a_single_message_are_refused_at_construction(
        self, source: Any
    ) -> None:
        with pytest.raises(TypeError, match=r"wrap a single message in a list"):
            EventStreamHttpResponse(source, request=None)

    @pytest.mark.parametrize("container", [list, tuple])
    def test_a_list_or_tuple_is_checked_at_construction(
        self, container: Callable[[list[Any]], Any]
    ) -> None:
        source = container([{"data": "fine"}, "data: not a message"])
        with pytest.raises(InvalidMessageError) as caught:
            EventStreamHttpResponse(source, request=None)
        assert caught.value.position == 1
        assert "item 1 of the stream" in str(caught.value)
        assert "'data: not a message'" in str(caught.value)

    def test_a_bad_message_from_a_generator_is_logged_whole_with_its_position(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        def messages() -> Iterator[Any]:
            yield {"data": "fine"}
            yield None
            yield "data: " + "x" * 500

        with caplog.at_level(logging.ERROR, logger="sse_response"):
            body = b"".join(EventStreamHttpResponse(messages(), request=None))
        assert parse(body) == [ServerSentEvent("fine")]
        [record] = [r for r in caplog.records if r.name == "sse_response"]
        assert record.exc_info is not None
        error = record.exc_info[1]
        assert isinstance(error, InvalidMessageError)
        assert error.position == 2
        text = str(error)
        # Not just its first character, and shortened, saying how long it is.
        assert "'data: xxx" in text
        assert "(508 characters)" in text
        assert len(text) < 400

    def test_a_callable_returning_text_ends_the_stream_with_a_clear_error(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        text_returning: Any = lambda last_event_id: "data: hello"  # noqa: E731
        with caplog.at_level(logging.ERROR, logger="sse_response"):
            response = EventStreamHttpResponse(text_returning, request=None)
            assert b"".join(response) == b""
        assert "not str" in caplog.text


class TestCallableWithoutRequest:
    def test_warns_saying_how_to_fix_it(self) -> None:
        def messages(last_event_id: str | None) -> list[Any]:
            return []

        with pytest.warns(NoRequestWarning, match=r"request=request") as caught:
            EventStreamHttpResponse(messages).close()
        # The warning points at the caller's line, not at the library.
        assert caught[0].filename == __file__

    def test_an_explicit_request_or_none_does_not_warn(self) -> None:
        def messages(last_event_id: str | None) -> list[Any]:
            return []

        # filterwarnings = error: a warning here fails the test.
        EventStreamHttpResponse(messages, request=None).close()
        request = RequestFactory().get("/", headers={"Last-Event-ID": "7"})
        EventStreamHttpResponse(messages, request=request).close()
        EventStreamHttpResponse([], request=None).close()
        EventStreamHttpResponse([]).close()


class TestOpening:
    @pytest.mark.parametrize("kind", ["sync_iterator", "async_iterator"])
    def test_the_first_chunk_is_empty_and_comes_before_the_source_yields(
        self, kind: str, probe: Probe
    ) -> None:
        """An empty chunk is what makes WSGI servers send the headers at once."""
        response = EventStreamHttpResponse(
            make_source(kind, lambda last: iter([GATE, {"data": "a"}]), probe),
            heartbeat=None,
        )
        chunks = iter(response)
        assert next(chunks) == b""
        probe.release()
        assert next(chunks) == b"data: a\n\n"
        response.close()
