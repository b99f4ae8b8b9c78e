"""
Streams whose source uses the ORM, tested as a Django user tests them: in a
``TestCase``, in a pytest-django ``django_db`` test, and with ``AsyncClient``,
none of them transactional. The source runs in a thread of its own (sync) or
on the stream's loop with ``sync_to_async()`` calls (async), and must see the
test's rows, which only its transaction holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, connection
from django.http import HttpRequest
from django.test import Client, TestCase

from sse_response import EventStreamHttpResponse, EventStreamMessage
from sse_response.testing import aread_stream, read_stream
from tests import views
from tests.ormapp.models import Message

KINDS = ["sync_iterator", "async_iterator", "sync_callable", "async_callable"]


def sync_rows() -> Iterator[EventStreamMessage]:
    for message in Message.objects.order_by("id"):
        yield {"id": str(message.pk), "data": message.text}


async def async_rows() -> AsyncIterator[EventStreamMessage]:
    async for message in Message.objects.order_by("id"):
        yield {"id": str(message.pk), "data": message.text}


def rows_view(kind: str) -> Callable[[HttpRequest], EventStreamHttpResponse]:
    def view(request: HttpRequest) -> EventStreamHttpResponse:
        source: Any
        if kind == "sync_iterator":
            source = sync_rows()
        elif kind == "async_iterator":
            source = async_rows()
        elif kind == "sync_callable":

            def source(last_event_id: str | None) -> Iterator[EventStreamMessage]:
                return sync_rows()

        else:

            async def source(
                last_event_id: str | None,
            ) -> AsyncIterator[EventStreamMessage]:
                async for message in async_rows():
                    yield message

        return EventStreamHttpResponse(source, request=request, heartbeat=None)

    return view


for _kind in KINDS:
    views.FACTORIES[f"orm-{_kind}"] = rows_view(_kind)


def path(kind: str, async_view: bool = True) -> str:
    return f"/{'astream' if async_view else 'stream'}/orm-{kind}/"


def close_old_connections_is_connected() -> bool:
    connected = request_finished.disconnect(close_old_connections)
    if connected:
        request_finished.connect(close_old_connections)
    return connected


class TestInTestCase(TestCase):
    """The first test a user writes: TestCase and its client."""

    def check(self, kind: str) -> None:
        Message.objects.create(text="hello")
        Message.objects.create(text="world")
        reading = read_stream(self.client.get(path(kind)), events=2, timeout=10)
        assert [event.data for event in reading.events] == ["hello", "world"]
        # The test's connection is still the test's, in its transaction.
        assert connection.in_atomic_block
        assert Message.objects.count() == 2

    def test_sync_iterator(self) -> None:
        self.check("sync_iterator")

    def test_async_iterator(self) -> None:
        self.check("async_iterator")

    def test_sync_callable(self) -> None:
        self.check("sync_callable")

    def test_async_callable(self) -> None:
        self.check("async_callable")


class TestWithAsyncClient(TestCase):
    """TestCase's async tests, AsyncClient and aread_stream()."""

    async def check(self, kind: str) -> None:
        await Message.objects.acreate(text="hello")
        response = await self.async_client.get(path(kind))
        reading = await aread_stream(response, events=1, timeout=10)
        assert [event.data for event in reading.events] == ["hello"]
        assert await Message.objects.acount() == 1

    async def test_sync_iterator(self) -> None:
        await self.check("sync_iterator")

    async def test_async_iterator(self) -> None:
        await self.check("async_iterator")

    async def test_sync_callable(self) -> None:
        await self.check("sync_callable")

    async def test_async_callable(self) -> None:
        await self.check("async_callable")


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("async_view", [True, False], ids=["async_view", "sync_view"])
def test_in_a_django_db_test(kind: str, async_view: bool, client: Client) -> None:
    Message.objects.create(text="hello")
    reading = read_stream(client.get(path(kind, async_view)), events=1, timeout=10)
    assert [event.data for event in reading.events] == ["hello"]
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_closing_leaves_the_test_connection_alone(client: Client) -> None:
    """As Django's test client does when it closes a response."""
    seen: list[bool] = []

    def on_finished(**kwargs: object) -> None:
        seen.append(close_old_connections_is_connected())

    request_finished.connect(on_finished)
    try:
        Message.objects.create(text="hello")
        # Closed by the helper before its end: the stream is endless.
        response = EventStreamHttpResponse(
            iter(lambda: {"data": "x"}, None), request=None, heartbeat=None
        )
        read_stream(response, events=1)
    finally:
        request_finished.disconnect(on_finished)
    assert seen
    assert not any(seen)
    assert close_old_connections_is_connected()
    assert Message.objects.count() == 1
