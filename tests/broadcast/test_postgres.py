"""
Broadcast on the PostgresBackend with a real PostgreSQL server, served in
this process through Django's real ASGIHandler and WSGIHandler: the checks
the Redis backend passes, and what only a database can do, publishing
inside the caller's transaction.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.test import override_settings

from sse_response.broadcast import BroadcastError, apublish, get_backend, publish
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.positions import MAX_SEQ, channel_tag, format_event_id
from tests.broadcast.helpers import attached, numbers, resets, streaming
from tests.broadcast.postgres_server import PostgresServer
from tests.support import PROTOCOLS, WAIT, Call

pytestmark = pytest.mark.timeout(60)

Serve = Callable[..., str]

#: The Django database alias the tests give the backend.
ALIAS = "broadcast"


def add_database(alias: str, settings: dict[str, Any]) -> None:
    """Give Django's connections one more alias, after settings were loaded."""
    configured = connections.configure_settings(
        {**connections.settings, alias: settings}
    )
    connections.settings[alias] = configured[alias]


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the module, migrated, as the ``broadcast`` alias."""
    server = PostgresServer()
    try:
        server.start()
        add_database(ALIAS, server.settings)
        call_command("migrate", "sse_response", database=ALIAS, verbosity=0)
        connections[ALIAS].close()
        yield server
    finally:
        server.remove()


@pytest.fixture
def use_postgres_backend(
    postgres_server: PostgresServer,
) -> Iterator[Callable[..., BaseBackend]]:
    """Make the process's backend a new PostgresBackend with the OPTIONS given."""
    with postgres_server.connect() as connection:
        connection.execute(
            "TRUNCATE sse_response_event, sse_response_channel, sse_response_epoch"
        )
    settings: list[Any] = []

    def use(**options: Any) -> BaseBackend:
        setting = {
            "BACKEND": "sse_response.broadcast.PostgresBackend",
            "LOCATION": ALIAS,
            "OPTIONS": options,
        }
        override = override_settings(SSE_RESPONSE_BROADCAST=setting)
        override.enable()
        settings.append(override)
        return get_backend()

    yield use
    for override in reversed(settings):
        override.disable()


@pytest.fixture
def pg_backend(use_postgres_backend: Callable[..., BaseBackend]) -> BaseBackend:
    return use_postgres_backend()


@pytest.fixture(params=sorted(PROTOCOLS))
def start(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return PROTOCOLS[request.param]


async def publish_numbers(channel: str, numbers_: range) -> list[str]:
    return [await apublish(channel, {"event": "n", "data": {"n": n}}) for n in numbers_]


async def test_live_events_then_a_lossless_resume(
    pg_backend: BaseBackend, serve: Serve, start: Callable[..., Any]
) -> None:
    path = serve(streaming("orders", "news"))
    call = await start(path)
    await attached(pg_backend, 1)
    await publish_numbers("orders", range(1, 4))
    await publish_numbers("news", range(4, 5))
    reading = await call.read(events=4)
    assert numbers(reading.events) == [1, 2, 3, 4]
    await call.disconnect()
    missed = await publish_numbers("orders", range(5, 8))
    assert missed[-1].endswith(f".{channel_tag('orders')}6")

    again = await start(path, headers={"Last-Event-ID": reading.parser.last_event_id})
    await attached(pg_backend, 1)
    await publish_numbers("news", range(8, 9))
    assert numbers((await again.read(events=4)).events) == [5, 6, 7, 8]
    await again.disconnect()


async def test_a_payload_over_notifys_8000_bytes(
    pg_backend: BaseBackend, serve: Serve
) -> None:
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(pg_backend, 1)
    big = "x" * 100_000
    await apublish("orders", {"data": {"n": 1, "big": big}})
    reading = await call.read(events=1)
    await call.disconnect()
    assert numbers(reading.events) == [1]
    assert len(reading.events[0].data) > 100_000


class Transaction:
    """
    A transaction of its own thread that publishes to ``orders``, then waits
    for the test before it commits or rolls back.
    """

    def __init__(self, commit: bool) -> None:
        self.commit = commit
        self.stored = threading.Event()
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with transaction.atomic(using=ALIAS):
                publish("orders", {"data": {"n": 1}})
                self.stored.set()
                assert self.go.wait(WAIT)
                if not self.commit:
                    transaction.set_rollback(True, using=ALIAS)
        finally:
            self.stored.set()
            connections[ALIAS].close()

    def end(self) -> None:
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_a_publish_in_a_transaction_goes_out_at_commit_and_never_on_rollback(
    pg_backend: BaseBackend, serve: Serve, start: Callable[..., Any], commit: bool
) -> None:
    call = await start(serve(streaming("orders", "news")))
    await attached(pg_backend, 1)
    pending = Transaction(commit)
    assert await asyncio.to_thread(pending.stored.wait, WAIT)
    # Published (and committed) after the transaction's event was stored:
    # it arrives, and the transaction's event does not, until the commit.
    await apublish("news", {"data": {"n": 2}})
    assert numbers((await call.read(events=1)).events) == [2]
    await asyncio.to_thread(pending.end)
    await apublish("orders", {"data": {"n": 3}})
    reading = await call.read(events=3 if commit else 2)  # counted from the start
    await call.disconnect()
    assert numbers(reading.events) == ([2, 1, 3] if commit else [2, 3])
    # A rolled-back event gives its sequence number back.
    assert reading.parser.last_event_id.split(".")[1] == (
        f"{channel_tag('orders')}{2 if commit else 1}"
    )


async def test_200_subscribers_on_50_channels_use_2_connections(
    pg_backend: BaseBackend, postgres_server: PostgresServer, serve: Serve
) -> None:
    paths = [serve(streaming(f"room-{n % 50}", f"user-{n}")) for n in range(200)]
    calls: list[Call] = [await PROTOCOLS["asgi"](path) for path in paths]
    await attached(pg_backend, 200)
    for room in range(50):
        await apublish(f"room-{room}", {"data": {"n": room}})
    for n, call in enumerate(calls):
        assert numbers((await call.read(events=1)).events) == [n % 50]
    assert postgres_server.connections(f"sse_response-{os.getpid()}-") == [
        f"sse_response-{os.getpid()}-listen",
        f"sse_response-{os.getpid()}-query",
    ]
    for call in calls:
        await call.disconnect()


@pytest.mark.parametrize("hostile", ["garbage", "x" * 65536, "far-future", "secret"])
async def test_hostile_last_event_ids(
    pg_backend: BaseBackend, serve: Serve, hostile: str
) -> None:
    await publish_numbers("secret", range(100, 102))
    ids = await publish_numbers("orders", range(1, 3))
    epoch = ids[0].split(".")[0]
    if hostile == "far-future":
        hostile = format_event_id(epoch, [channel_tag("orders")], [MAX_SEQ])
    elif hostile == "secret":
        hostile = format_event_id(
            epoch, [channel_tag("orders"), channel_tag("secret")], [0, 0]
        )
    call = await PROTOCOLS["asgi"](
        serve(streaming("orders")), headers={"Last-Event-ID": hostile}
    )
    assert call.status == 200
    await attached(pg_backend, 1)
    await publish_numbers("secret", range(102, 103))
    await publish_numbers("orders", range(3, 4))
    if hostile.endswith(f"{channel_tag('secret')}0"):
        expected_resets, expected = [], [1, 2, 3]  # orders replayed from 0
    else:
        expected_resets, expected = [["orders"]], [3]
    reading = await call.read(events=len(expected_resets) + len(expected))
    await call.disconnect()
    assert resets(reading.events) == expected_resets
    assert numbers(reading.events) == expected


async def test_pruned_history_is_reset_and_replay_reads_pages(
    use_postgres_backend: Callable[..., BaseBackend],
    postgres_server: PostgresServer,
    serve: Serve,
) -> None:
    backend = use_postgres_backend(history=1000, prune_interval=0.1)
    ids = await publish_numbers("orders", range(1, 2001))
    # The listener prunes to the last 1000 events of each channel.
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(backend, 1)
    await call.disconnect()
    deadline = time.monotonic() + WAIT
    while True:
        with postgres_server.connect() as connection:
            row = connection.execute(
                "SELECT min(seq), count(*) FROM sse_response_event"
            ).fetchone()
        if row == (1001, 1000):
            break
        assert time.monotonic() < deadline, f"not pruned: {row}"
        await asyncio.sleep(0.05)

    # 999 missed events, all in history: replayed, no reset.
    resumed = await PROTOCOLS["asgi"](
        serve(streaming("orders")), headers={"Last-Event-ID": ids[1000]}
    )
    reading = await resumed.read(events=999)
    await resumed.disconnect()
    await attached(backend, 0)
    assert resets(reading.events) == []
    assert numbers(reading.events) == list(range(1002, 2001))

    # Missed events that were pruned: a reset, then what history has.
    trimmed = await PROTOCOLS["asgi"](
        serve(streaming("orders")), headers={"Last-Event-ID": ids[0]}
    )
    await attached(backend, 1)
    await publish_numbers("orders", range(2001, 2002))
    reading = await trimmed.read(events=2)
    await trimmed.disconnect()
    assert resets(reading.events) == [["orders"]]
    assert numbers(reading.events) == [2001]


async def test_the_listener_reconnects_and_loses_nothing(
    pg_backend: BaseBackend, postgres_server: PostgresServer, serve: Serve
) -> None:
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(pg_backend, 1)
    with postgres_server.connect() as admin:
        for n in range(300):
            await apublish("orders", {"data": {"n": n}})
            if n % 100 == 50:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'sse_response-%'"
                )
    reading = await call.read(events=300)
    await call.disconnect()
    assert numbers(reading.events) == list(range(300))
    assert resets(reading.events) == []


async def test_postgres_restarted_while_publishing(
    pg_backend: BaseBackend, postgres_server: PostgresServer, serve: Serve
) -> None:
    """
    publish() raises while PostgreSQL is down; every open stream has
    everything publish() reported stored, with no gap and no reset (the
    data survived), and gets new events within 5 s of the server being back.
    """
    calls = [await PROTOCOLS[p](serve(streaming("orders"))) for p in ("asgi", "wsgi")]
    await attached(pg_backend, 2)
    for n in range(50):
        await apublish("orders", {"data": {"n": n}})
    postgres_server.stop()
    with pytest.raises(BroadcastError):
        await apublish("orders", {"data": {"n": -1}})
    await asyncio.to_thread(postgres_server.start)
    back = time.monotonic()
    for n in range(50, 60):
        await apublish("orders", {"data": {"n": n}})
    for call in calls:
        reading = await call.read(events=60)
        assert numbers(reading.events) == list(range(60))
        assert resets(reading.events) == []
        await call.disconnect()
    assert time.monotonic() - back < 5


# The check reads only settings.DATABASES, never a connection.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    ("location", "databases", "ids"),
    [
        (ALIAS, None, []),
        (None, {"default": {"ENGINE": "django.db.backends.postgresql"}}, []),
        ("nope", None, ["sse_response.E019"]),
        (None, {}, ["sse_response.E019"]),
        (
            "lite",
            {"lite": {"ENGINE": "django.db.backends.sqlite3"}},
            ["sse_response.E020"],
        ),
    ],
)
def test_manage_py_check_of_the_location(
    postgres_server: PostgresServer,
    location: str | None,
    databases: dict[str, Any] | None,
    ids: list[str],
) -> None:
    from sse_response.checks import check_settings

    setting: dict[str, Any] = {"BACKEND": "sse_response.broadcast.PostgresBackend"}
    if location is not None:
        setting["LOCATION"] = location
    overrides: dict[str, Any] = {"SSE_RESPONSE_BROADCAST": setting}
    if databases is not None:
        overrides["DATABASES"] = databases
    else:
        overrides["DATABASES"] = {ALIAS: postgres_server.settings}
    with override_settings(**overrides):
        assert [error.id for error in check_settings()] == ids


PUBLISHER = """
import sys, django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["sse_response"],
    DATABASES={"default": %(database)r},
    SSE_RESPONSE_BROADCAST={"BACKEND": "sse_response.broadcast.PostgresBackend"},
)
django.setup()
from sse_response.broadcast import publish
for n in range(%(count)d):
    publish("orders", {"data": {"n": n}})
"""


async def test_concurrent_publishers_in_several_processes_and_threads(
    pg_backend: BaseBackend,
    postgres_server: PostgresServer,
    serve: Serve,
    tmp_path: Any,
) -> None:
    """Every event gets its own number, 1 to N, and every stream gets them all."""
    count = 200
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(pg_backend, 1)
    script = tmp_path / "publisher.py"
    script.write_text(
        PUBLISHER % {"database": postgres_server.settings, "count": count}
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
        for _ in range(2)
    ]

    def in_a_thread() -> None:
        try:
            for n in range(count):
                publish("orders", {"data": {"n": n}})
        finally:
            connections[ALIAS].close()

    await asyncio.gather(*(asyncio.to_thread(in_a_thread) for _ in range(3)))
    assert [await process.wait() for process in processes] == [0, 0]

    total = 5 * count
    reading = await call.read(events=total)
    await call.disconnect()
    assert resets(reading.events) == []
    assert sorted(numbers(reading.events)) == sorted(list(range(count)) * 5)
    with postgres_server.connect() as connection:
        seqs = [
            row[0]
            for row in connection.execute(
                "SELECT seq FROM sse_response_event WHERE channel = 'orders' "
                "ORDER BY seq"
            )
        ]
    assert seqs == list(range(1, total + 1))
    # The stream's last id stands at the last number.
    assert reading.parser.last_event_id.endswith(f"{channel_tag('orders')}{total}")
