"""
sse_response.testing as a test sees it: what it says about a response that
is not a stream, and how an exception in the source reaches the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.test import AsyncClient, Client

from sse_response import EventStreamHttpResponse, InvalidMessageError
from sse_response.testing import aread_stream, read_stream

Serve = Callable[..., str]


def not_a_stream(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect("/accounts/login/?next=/events/")


class TestNotAStream:
    def test_read_stream_names_the_status_and_where_a_redirect_goes(
        self, serve: Serve
    ) -> None:
        response = Client().get(serve(not_a_stream))
        with pytest.raises(AssertionError) as caught:
            read_stream(response, events=1)
        message = str(caught.value)
        assert "302 Found" in message
        assert "/accounts/login/?next=/events/" in message

    async def test_aread_stream_too(self, serve: Serve) -> None:
        response = await AsyncClient().get(serve(not_a_stream))
        with pytest.raises(AssertionError, match=r"302 Found, redirecting to /acc"):
            await aread_stream(response, events=1)

    def test_a_plain_response(self, serve: Serve) -> None:
        response = Client().get(serve(lambda request: HttpResponse("hello")))
        with pytest.raises(AssertionError, match=r"got 200 OK, Content-Type text/html"):
            read_stream(response)


def failing() -> Iterator[Any]:
    yield {"data": "before"}
    raise LookupError("the source broke")


async def afailing() -> AsyncIterator[Any]:
    yield {"data": "before"}
    raise LookupError("the source broke")


def invalid() -> Iterator[Any]:
    yield {"data": "before"}
    yield {"id": "1\n2"}


SOURCES: dict[str, Callable[[], Any]] = {
    "sync": failing,
    "async": afailing,
    "invalid": invalid,
}
ERRORS: dict[str, type[Exception]] = {
    "sync": LookupError,
    "async": LookupError,
    "invalid": InvalidMessageError,
}


def respond(source: str) -> Callable[[HttpRequest], EventStreamHttpResponse]:
    return lambda request: EventStreamHttpResponse(
        SOURCES[source](), request=request, heartbeat=None
    )


class TestSourceExceptions:
    @pytest.mark.parametrize("source", list(SOURCES))
    def test_read_stream_raises_what_the_source_raised(
        self, source: str, serve: Serve
    ) -> None:
        response = Client().get(serve(respond(source)))
        with pytest.raises(ERRORS[source]):
            read_stream(response)

    @pytest.mark.parametrize("source", list(SOURCES))
    async def test_aread_stream_too(self, source: str, serve: Serve) -> None:
        response = await AsyncClient().get(serve(respond(source)))
        with pytest.raises(ERRORS[source]):
            await aread_stream(response)

    @pytest.mark.parametrize("source", list(SOURCES))
    def test_unless_told_not_to(self, source: str, serve: Serve) -> None:
        response = Client().get(serve(respond(source)))
        reading = read_stream(response, raise_source_exception=False)
        assert [event.data for event in reading.events] == ["before"]
        assert reading.ended

    async def test_aread_stream_unless_told_not_to(self, serve: Serve) -> None:
        response = await AsyncClient().get(serve(respond("async")))
        reading = await aread_stream(response, raise_source_exception=False)
        assert [event.data for event in reading.events] == ["before"]
        assert reading.ended

    def test_a_response_built_in_the_test(self) -> None:
        with pytest.raises(LookupError):
            read_stream(EventStreamHttpResponse(failing(), request=None))


def test_a_stream_wrapped_by_middleware_is_read_as_it_is() -> None:
    response = EventStreamHttpResponse([{"data": "x"}], request=None)
    response.streaming_content = (
        chunk.replace(b"x", b"y") for chunk in response.streaming_content
    )
    reading = read_stream(response)
    assert [event.data for event in reading.events] == ["y"]
    assert reading.ended


async def test_read_stream_still_works_inside_a_running_loop() -> None:
    """A sync helper called from async code reads in a thread of its own."""
    response = EventStreamHttpResponse([{"data": "x"}], request=None)
    reading = read_stream(response)
    assert [event.data for event in reading.events] == ["x"]
