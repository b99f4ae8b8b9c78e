"""
What only the PostgresBackend does, with a real PostgreSQL server, served in
this process through Django's real ASGIHandler and WSGIHandler: payloads
over NOTIFY's limit, publishing inside the caller's transaction, pruning, a
restart, concurrent publishers, and the checks of its setting. The contract
every backend keeps is tested in test_backends.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import override_settings

from sse_response.broadcast import BroadcastError, apublish, publish
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.positions import channel_tag, parse_event_id
from tests.broadcast.conftest import POSTGRES_ALIAS, UseBackend
from tests.broadcast.helpers import (
    attached,
    numbers,
    publish_numbers,
    resets,
    streaming,
)
from tests.broadcast.postgres_server import PostgresServer
from tests.support import PROTOCOLS, WAIT

pytestmark = pytest.mark.timeout(60)

Serve = Callable[..., str]


async def test_a_payload_over_notifys_8000_bytes(
    postgres_backend: BaseBackend, serve: Serve
) -> None:
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(postgres_backend, 1)
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
            with transaction.atomic(using=POSTGRES_ALIAS):
                publish("orders", {"data": {"n": 1}})
                self.stored.set()
                assert self.go.wait(WAIT)
                if not self.commit:
                    transaction.set_rollback(True, using=POSTGRES_ALIAS)
        finally:
            self.stored.set()
            connections[POSTGRES_ALIAS].close()

    def end(self) -> None:
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_a_publish_in_a_transaction_goes_out_at_commit_and_never_on_rollback(
    postgres_backend: BaseBackend, serve: Serve, start: Callable[..., Any], commit: bool
) -> None:
    call = await start(serve(streaming("orders", "news")))
    await attached(postgres_backend, 1)
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
    parsed = parse_event_id(reading.parser.last_event_id)
    assert parsed is not None
    assert parsed.positions[channel_tag("orders")][1] == (2 if commit else 1)


async def test_pruned_history_is_reset_and_replay_reads_pages(
    use_postgres_backend: UseBackend,
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


async def test_postgres_restarted_while_publishing(
    postgres_backend: BaseBackend, postgres_server: PostgresServer, serve: Serve
) -> None:
    """
    publish() raises while PostgreSQL is down; every open stream has
    everything publish() reported stored, with no gap and no reset (the
    data survived), and gets new events within 5 s of the server being back.
    """
    calls = [await PROTOCOLS[p](serve(streaming("orders"))) for p in ("asgi", "wsgi")]
    await attached(postgres_backend, 2)
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
        try:
            reading = await asyncio.wait_for(call.read(events=60), 10)
        except asyncio.TimeoutError:
            reading = call.reading
        assert numbers(reading.events) == list(range(60))
        assert resets(reading.events) == []
        await call.disconnect()
    assert time.monotonic() - back < 5


# The check reads only settings.DATABASES, never a connection.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    ("location", "databases", "ids"),
    [
        (POSTGRES_ALIAS, None, []),
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
        overrides["DATABASES"] = {POSTGRES_ALIAS: postgres_server.settings}
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
    postgres_backend: BaseBackend,
    postgres_server: PostgresServer,
    serve: Serve,
    tmp_path: Any,
) -> None:
    """Every event gets its own number, 1 to N, and every stream gets them all."""
    count = 200
    call = await PROTOCOLS["asgi"](serve(streaming("orders")))
    await attached(postgres_backend, 1)
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
            connections[POSTGRES_ALIAS].close()

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
    assert reading.parser.last_event_id.startswith(f"{channel_tag('orders')}{total}:")
