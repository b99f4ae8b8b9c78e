"""
publish_on_commit() on every backend (MemoryBackend, and RedisBackend and
PostgresBackend on a real redis-server and PostgreSQL): the event goes out
after the commit and never after a rollback, nested atomic blocks and
savepoints behave as Django's own on_commit(), a backend that fails after
the commit is logged, and a TestCase sees what was published through
captureOnCommitCallbacks().
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.test import TestCase, override_settings

from sse_response import InvalidMessageError
from sse_response.broadcast import (
    BroadcastError,
    InvalidChannelError,
    MemoryBackend,
    apublish,
    get_backend,
    publish_on_commit,
)
from sse_response.broadcast.backends import reset_backend
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.oncommit import PendingPublish
from tests.broadcast.conftest import POSTGRES_ALIAS
from tests.broadcast.helpers import attached, numbers, streaming
from tests.support import PROTOCOLS, WAIT

pytestmark = pytest.mark.timeout(60)

Serve = Callable[..., str]


class Rollback(Exception):
    pass


@pytest.fixture
def database(any_backend: BaseBackend, django_db_blocker: Any) -> Iterator[str]:
    """
    The database whose transactions the test publishes in: PostgreSQL's
    alias with the PostgresBackend (the events then live in the same
    database), the default one (sqlite) with the others.
    """
    with django_db_blocker.unblock():
        yield (
            POSTGRES_ALIAS
            if type(any_backend).__name__ == "PostgresBackend"
            else (DEFAULT_DB_ALIAS)
        )


def close_thread_connections() -> None:
    """
    Close every database connection this thread opened. One left to the
    garbage collector warns (ResourceWarning, since Python 3.13's sqlite3)
    in whichever test runs then. Django's close() keeps an in-memory SQLite
    database open (closing it would drop the database); the test database
    lives on in the main thread's connection, so this thread's own can go.
    """
    for connection in connections.all(initialized_only=True):
        raw = connection.connection
        if connection.vendor == "sqlite" and raw is not None:
            raw.close()
            connection.connection = None
        else:
            connection.close()


def in_thread(function: Callable[[], Any], *aliases: str) -> Any:
    """Run ``function`` in a thread of its own, as a sync view would run."""

    def run() -> Any:
        try:
            return function()
        finally:
            close_thread_connections()

    return asyncio.to_thread(run)


class OpenTransaction:
    """
    A transaction of its own thread that calls publish_on_commit(), then
    waits for the test before it commits or rolls back.
    """

    def __init__(self, using: str, commit: bool) -> None:
        self.using = using
        self.commit = commit
        self.published = threading.Event()
        self.go = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with transaction.atomic(using=self.using):
                publish_on_commit("orders", {"data": {"n": 1}}, using=self.using)
                self.published.set()
                assert self.go.wait(WAIT)
                if not self.commit:
                    transaction.set_rollback(True, using=self.using)
        except BaseException as exc:
            self.error = exc
        finally:
            self.published.set()
            close_thread_connections()

    def end(self) -> None:
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_the_event_goes_out_after_the_commit_and_never_on_rollback(
    any_backend: BaseBackend, database: str, serve: Serve, commit: bool
) -> None:
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(any_backend, 1)
    pending = OpenTransaction(database, commit)
    assert await asyncio.to_thread(pending.published.wait, WAIT)
    # Inside the transaction, even a while later: nothing stored, so
    # nothing any stream could send.
    await asyncio.sleep(0.3)
    assert (await any_backend.read("orders", 0, 10)).entries == []
    await asyncio.to_thread(pending.end)
    # After the commit (or the rollback), an event published directly.
    await apublish("orders", {"data": {"n": 2}})
    reading = await call.read(events=2 if commit else 1)
    await call.disconnect()
    assert numbers(reading.events) == ([1, 2] if commit else [2])


async def test_nested_blocks_and_savepoints_as_djangos_on_commit(
    any_backend: BaseBackend, database: str, serve: Serve
) -> None:
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(any_backend, 1)
    djangos: list[int] = []

    def both(n: int) -> None:
        publish_on_commit("orders", {"data": {"n": n}}, using=database)
        transaction.on_commit(lambda: djangos.append(n), using=database)

    def transactions() -> None:
        with transaction.atomic(using=database):
            both(1)
            with transaction.atomic(using=database):  # a savepoint released
                both(2)
            try:
                with transaction.atomic(using=database):  # one rolled back
                    both(3)
                    with transaction.atomic(using=database):
                        both(4)
                    raise Rollback
            except Rollback:
                pass
            with transaction.atomic(using=database, savepoint=False):
                both(5)
        # The outermost block committed: 1, 2 and 5 go out, in order.
        with transaction.atomic(using=database):
            both(6)
            transaction.set_rollback(True, using=database)
        both(7)  # no transaction: at once

    await in_thread(transactions, database)
    reading = await call.read(events=4)
    await call.disconnect()
    assert djangos == [1, 2, 5, 7]
    assert numbers(reading.events) == djangos


async def test_a_backend_that_fails_after_the_commit_is_logged(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    setting = {"BACKEND": f"{__name__}.FailingBackend"}

    def commit() -> None:
        with transaction.atomic(using=database):
            publish_on_commit("orders", {"data": {"n": 1}}, using=database)
        publish_on_commit("orders", {"data": {"n": 2}}, using=database)

    with (
        override_settings(SSE_RESPONSE_BROADCAST=setting),
        caplog.at_level(logging.ERROR, "sse_response.broadcast"),
    ):
        await in_thread(commit, database)  # nothing raised
    failures = [
        record
        for record in caplog.records
        if record.name == "sse_response.broadcast"
        and "after its transaction committed failed" in record.getMessage()
    ]
    assert len(failures) == 2
    assert all(
        isinstance(r.exc_info and r.exc_info[1], BroadcastError) for r in failures
    )


class FailingBackend(MemoryBackend):
    def append(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        raise BroadcastError("the service is down")


async def test_a_bad_message_raises_at_once_and_nothing_is_left_behind(
    database: str,
) -> None:
    def bad() -> list[Any]:
        with transaction.atomic(using=database):
            with pytest.raises(InvalidMessageError):
                publish_on_commit("orders", {"id": "1", "data": "x"}, using=database)
            with pytest.raises(InvalidMessageError):
                publish_on_commit("orders", {"data": "x", "bogus": 1}, using=database)
            with pytest.raises(InvalidChannelError):
                publish_on_commit("", {"data": "x"}, using=database)
            return list(connections[database].run_on_commit)

    assert await in_thread(bad, database) == []


async def test_refused_inside_an_event_loop() -> None:
    with pytest.raises(SynchronousOnlyOperation, match="sync code"):
        publish_on_commit("orders", {"data": "x"})


@override_settings(
    SSE_RESPONSE_BROADCAST={"BACKEND": "sse_response.broadcast.MemoryBackend"}
)
class PublishOnCommitTestCase(TestCase):
    """A TestCase never commits: captureOnCommitCallbacks() shows what would go out."""

    def setUp(self) -> None:
        reset_backend()  # a new MemoryBackend for each test

    def stored(self) -> list[bytes | None]:
        page = async_to_sync(get_backend().read)("orders", 0, 10)
        return [payload for _, payload in page.entries]

    def test_captured_and_published(self) -> None:
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            publish_on_commit("orders", {"event": "created", "data": {"n": 1}})
            assert self.stored() == []
        assert len(callbacks) == 1
        callback = callbacks[0]
        assert isinstance(callback, PendingPublish)
        assert callback.channel == "orders"
        assert callback.message == {"event": "created", "data": {"n": 1}}
        assert self.stored() == [b'event: created\ndata: {"n":1}\n\n']

    def test_captured_only(self) -> None:
        with self.captureOnCommitCallbacks() as callbacks:
            publish_on_commit("orders", {"data": "x"})
        assert [getattr(c, "channel", None) for c in callbacks] == ["orders"]
        assert self.stored() == []
