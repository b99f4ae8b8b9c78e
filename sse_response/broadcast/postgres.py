"""
PostgresBackend: channels in the PostgreSQL database the site already uses.

* The events are rows of ``sse_response_event`` (the app's migration makes
  it), which is the truth: history, replay and catching up all read it.
  ``NOTIFY`` only wakes the listeners, so a payload of any size works, and a
  lost notification only delays an event until the next read.
* Publishing runs one statement on Django's connection of ``LOCATION``, in
  the caller's transaction: it bumps the channel's row in
  ``sse_response_channel`` (``INSERT ... ON CONFLICT DO UPDATE``), stores the
  event under the new sequence number, and queues the ``NOTIFY``. The row
  stays locked until the transaction ends, so publishers of one channel take
  their numbers in the order they commit, and a number is never skipped: a
  rolled-back event gives its number back. PostgreSQL delivers a ``NOTIFY``
  only when its transaction commits, so an event published inside
  ``transaction.atomic()`` reaches the streams after the commit, and never
  if it rolls back.
* Each process has two connections of its own, whatever the number of
  subscribers and channels, neither taken from Django's: one listens, and
  one answers the subscribers' queries (where a channel stands, replays).
  After a lost connection the listener reconnects by itself and reads every
  channel from the last position it handed out; it also reads every channel
  now and then, so that nothing depends on a notification arriving.
* The epoch is a random token in ``sse_response_epoch``. A database that
  lost its data (restored, recreated) has lost it too: a new one is made,
  and every stream learns that its positions no longer mean anything.
* History is pruned by the listeners, on their own connections, never by
  the publishers: to ``OPTIONS["history"]`` events per channel, and to
  ``OPTIONS["max_age"]`` seconds when that is set.

This is the only module that imports psycopg (``pip install
'sse_response[postgres]'``); the listening connection must reach PostgreSQL
directly, not through a PgBouncer in transaction mode, which does not pass
``LISTEN`` on (the listener checks, and warns).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from sse_response.broadcast.base import (
    BaseBackend,
    BroadcastError,
    Entry,
    Page,
    Snapshot,
)
from sse_response.broadcast.hub import Subscriber
from sse_response.broadcast.positions import Lineage, new_epoch
from sse_response.broadcast.postgres_presence import PostgresPresence
from sse_response.broadcast.reconnect import Reconnection

__all__ = ["PostgresBackend"]

logger = logging.getLogger("sse_response.broadcast")

#: The NOTIFY channel; the payload is the name of the broadcast channel
#: (empty for the listener's own probe).
NOTIFY_CHANNEL = "sse_response"

# One round trip: the channel's next number, the event, the notification,
# and the epoch (NULL until the first publish of a new database).
_APPEND = """
WITH counter AS (
    INSERT INTO sse_response_channel AS c (name, last_seq) VALUES (%s, 1)
    ON CONFLICT (name) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq
), stored AS (
    INSERT INTO sse_response_event (channel, seq, payload, created)
    SELECT %s, last_seq, %s, clock_timestamp() FROM counter
    RETURNING seq
)
SELECT (SELECT epoch FROM sse_response_epoch WHERE id = 1), seq, pg_notify(%s, %s)
FROM stored
"""

_EPOCH = """
WITH made AS (
    INSERT INTO sse_response_epoch (id, epoch) VALUES (1, %s)
    ON CONFLICT (id) DO NOTHING
    RETURNING epoch
)
SELECT epoch FROM made UNION ALL SELECT epoch FROM sse_response_epoch WHERE id = 1
LIMIT 1
"""

# The events of several channels after a position on each, in the order
# they were stored (within a channel, that of their sequence numbers), with
# their time of publishing (the publish-to-send lag of the metrics).
_AFTER = """
SELECT e.channel, e.seq, e.payload, extract(epoch FROM e.created)::float8
FROM sse_response_event e
JOIN unnest(%s::text[], %s::bigint[]) AS p(channel, after)
  ON e.channel = p.channel AND e.seq > p.after
ORDER BY e.id
LIMIT %s
"""

_LAST_SEQS = "SELECT name, last_seq FROM sse_response_channel WHERE name = ANY(%s)"

_PAGE = """
SELECT c.last_seq, e.seq, e.payload
FROM sse_response_channel c
LEFT JOIN LATERAL (
    SELECT seq, payload FROM sse_response_event
    WHERE channel = c.name AND seq > %s ORDER BY seq LIMIT %s
) e ON true
WHERE c.name = %s
"""

# Only the channels that have more than the history: the others have
# nothing to prune, and their events are not read.
_PRUNE = """
DELETE FROM sse_response_event e USING sse_response_channel c
WHERE c.last_seq > %s AND e.channel = c.name AND e.seq <= c.last_seq - %s
"""

_PRUNE_AGE = (
    "DELETE FROM sse_response_event WHERE created < now() - %s * interval '1 second'"
)

#: How long a new stream waits for the listener to reach PostgreSQL before
#: it ends (its client retries).
CONNECT_WAIT = 5.0

#: How often the listener checks the epoch and, when notifications do not
#: come (a PgBouncer in transaction mode), reads every channel: the bound on
#: how late an event is then.
SWEEP_INTERVAL = 1.0

#: How often the listener reads every channel when notifications do come
#: (a reconnection reads every channel too).
FULL_SWEEP = 10.0

#: How many channels one query of a sweep reads.
SWEEP_SLICE = 500

#: How many rows one catch-up read takes at most.
READ_LIMIT = 1000


class PostgresBackend(BaseBackend):
    """
    Channels in the PostgreSQL database of the Django alias ``LOCATION``
    (``"default"`` when absent).

    ``OPTIONS``: ``history`` (events kept per channel; default 1000),
    ``max_age`` (seconds an event is kept at most; default: no limit),
    ``buffer`` (bytes that may wait for one local subscriber; default
    1 MiB), ``prune_interval`` (seconds between prunes; default 10).
    """

    def __init__(self, location: str | None, params: Mapping[str, Any]) -> None:
        super().__init__(location, params)
        self.alias = location or DEFAULT_DB_ALIAS
        max_age = self.options.get("max_age")
        self.max_age = None if max_age is None else float(max_age)
        self.prune_interval = float(self.options.get("prune_interval", 10.0))
        self.application_name = f"sse_response-{os.getpid()}"
        self._start_lock = threading.Lock()
        self._listener: threading.Thread | None = None
        #: Set while the listener is connected and the epoch is known.
        self._ready = threading.Event()
        self._closed = False
        self._listening: psycopg.Connection[Any] | None = None
        self._sweep_interval = SWEEP_INTERVAL
        #: The connection for the subscribers' queries, one query at a time.
        self._queries: psycopg.Connection[Any] | None = None
        self._queries_lock = threading.Lock()
        #: Channels new streams wait for, and whether a lookup runs.
        self._lookup_lock = threading.Lock()
        self._unknown: set[str] = set()
        self._looking = False
        #: The lineage of every channel: the database's epoch, once known.
        self.lineage = Lineage("")

    # Publishing: on Django's connection, in the caller's transaction.

    def append(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        connection = connections[self.alias]
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    _APPEND, [channel, channel, payload, NOTIFY_CHANNEL, channel]
                )
                epoch, seq, _ = cursor.fetchone()
                if epoch is None:
                    cursor.execute(_EPOCH, [new_epoch(os.urandom(6))])
                    (epoch,) = cursor.fetchone()
        except DatabaseError as exc:
            if not connection.in_atomic_block:
                # A connection the server dropped (a restart) is replaced at
                # the next publish, as Django does at the next request.
                connection.close_if_unusable_or_obsolete()
            raise BroadcastError(
                f"The event for channel {channel!r} could not be stored in the "
                f"database {self.alias!r}: {exc}"
            ) from exc
        return str(epoch), int(seq)

    async def aappend(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        # In the thread where Django's async code runs its sync calls, so
        # that an event published inside a transaction of that thread
        # belongs to it.
        return await sync_to_async(self.append, thread_sensitive=True)(channel, payload)

    # Subscribing.

    async def attach(self, subscriber: Subscriber) -> Snapshot:
        self._start_listener()
        unknown = self.hub.add(subscriber)
        if unknown:
            self._look_up(unknown)
        if not subscriber.started and not await self.hub.wait_started(
            subscriber, CONNECT_WAIT
        ):
            raise BroadcastError(
                f"The database {self.alias!r} cannot be reached to listen."
            )
        # Where it was added, not where the channel stands now: what the
        # catch-up read below delivered since is the subscriber's to send.
        return Snapshot.of(subscriber)

    def _look_up(self, channels: list[str]) -> None:
        """
        Find where ``channels`` stand, together with every other channel
        that new streams wait for: a storm of connections makes a few
        queries, not two per stream.
        """
        with self._lookup_lock:
            self._unknown.update(channels)
            if self._looking:
                return
            self._looking = True
        asyncio.get_running_loop().run_in_executor(None, self._look_up_pending)

    def _look_up_pending(self) -> None:
        while True:
            with self._lookup_lock:
                channels = list(self._unknown)
                self._unknown.clear()
                if not channels:
                    self._looking = False
                    return
            try:
                self._prepare(channels)
            except BroadcastError as exc:
                # Their streams give up after CONNECT_WAIT; their clients retry.
                logger.warning("Broadcast channels cannot be looked up: %s", exc)
            except Exception:
                logger.exception("Broadcast channels cannot be looked up.")

    def _prepare(self, channels: list[str]) -> None:
        """Wait for the listener, and find where the new ``channels`` stand."""
        if not self._ready.wait(CONNECT_WAIT):
            raise BroadcastError(
                f"The database {self.alias!r} cannot be reached to listen."
            )
        if not channels:
            return
        rows = self._query(_LAST_SEQS, [channels])
        last = {name: int(seq) for name, seq in rows}
        for channel in channels:
            self.hub.set_position(channel, last.get(channel, 0), self.lineage)
        # What was stored between that read and now has been notified to a
        # listener that did not know these channels yet: read it here.
        self._deliver(self._query_after(self.hub.positions(channels)))

    async def read(self, channel: str, after: int, limit: int) -> Page:
        return await asyncio.to_thread(self._read, channel, after, limit)

    def _read(self, channel: str, after: int, limit: int) -> Page:
        rows = self._query(_PAGE, [after, limit, channel])
        if not rows:
            return Page([], 0)
        entries: list[Entry] = [
            (int(seq), None if payload is None else bytes(payload))
            for _, seq, payload in rows
            if seq is not None
        ]
        return Page(entries, int(rows[0][0]))

    # The connections of this process.

    def _connect(self, role: str) -> psycopg.Connection[Any]:
        params = connections[self.alias].get_connection_params()
        # Django's adapters and cursor class are for its own connections.
        for name in ("context", "cursor_factory"):
            params.pop(name, None)
        params["application_name"] = f"{self.application_name}-{role}"
        params.setdefault("connect_timeout", 5)
        return psycopg.connect(autocommit=True, **params)

    def _query(self, query: str, args: list[Any]) -> list[tuple[Any, ...]]:
        with self._queries_lock:
            for attempt in (1, 2):
                try:
                    if self._queries is None or self._queries.closed:
                        self._queries = self._connect("query")
                    cursor = self._queries.execute(query, args)
                    return cursor.fetchall() if cursor.description else []
                except psycopg.OperationalError as exc:
                    # A connection the server closed (a restart): one more
                    # try on a new one.
                    if self._queries is not None:
                        self._queries.close()
                    self._queries = None
                    if attempt == 2:
                        raise BroadcastError(
                            f"The database {self.alias!r} cannot be reached: {exc}"
                        ) from exc
                except psycopg.Error as exc:
                    raise BroadcastError(
                        f"The broadcast tables of the database {self.alias!r} "
                        f"cannot be read ({exc}); did 'manage.py migrate' run?"
                    ) from exc
        raise AssertionError("unreachable")

    def _query_after(self, positions: Mapping[str, int]) -> list[tuple[Any, ...]]:
        """Every stored event of ``positions``' channels after their position."""
        rows: list[tuple[Any, ...]] = []
        after = dict(positions)
        while after:
            page = self._query(_AFTER, [list(after), list(after.values()), READ_LIMIT])
            rows.extend(page)
            if len(page) < READ_LIMIT:
                break
            for channel, seq, *_ in page:
                after[channel] = max(after[channel], int(seq))
        return rows

    def _deliver(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Hand ``rows`` to the hub in their order, a run of one channel at a time."""
        checked: set[str] = set()
        run: list[Entry] = []
        run_channel = None
        published = 0.0
        for channel, seq, payload, created in (*rows, (None, 0, None, 0.0)):
            if channel != run_channel and run:
                assert run_channel is not None
                if run_channel not in checked:
                    checked.add(run_channel)
                    position = self.hub.position(run_channel)
                    if position is not None and run[0][0] > position + 1:
                        # Pruned before this process read it.
                        self.hub.gap(run_channel, run[0][0] - 1)
                self.hub.deliver(run_channel, run, published=published)
                run = []
            if not run:
                published = float(created or 0.0)
            run_channel = channel
            if channel is not None:
                run.append((int(seq), None if payload is None else bytes(payload)))

    # The listener.

    def _start_listener(self) -> None:
        if self._listener is not None:
            return
        with self._start_lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(
                    target=self._listen_forever,
                    name="sse_response broadcast listener",
                    daemon=True,
                )
                self._listener.start()

    def _connect_listener(self) -> psycopg.Connection[Any]:
        connection = self._connect("listen")
        try:
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            # A notification to itself: through a PgBouncer in transaction
            # mode, LISTEN and NOTIFY may not share a server connection.
            connection.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
            notifying = any(
                True for _ in connection.notifies(timeout=2.0, stop_after=1)
            )
            # Notifications only wake the listener; every channel is read now
            # and then all the same, often when they do not come.
            self._sweep_interval = SWEEP_INTERVAL if not notifying else FULL_SWEEP
            if not notifying:
                logger.warning(
                    "The listening connection to the database %r gets no "
                    "notifications (is it behind a PgBouncer in transaction "
                    "mode?); events will be read every %s s instead.",
                    self.alias,
                    SWEEP_INTERVAL,
                )
            self._check_epoch(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_epoch(self, connection: psycopg.Connection[Any]) -> None:
        row = connection.execute(_EPOCH, [new_epoch(os.urandom(6))]).fetchone()
        assert row is not None
        # A different epoch: the database lost the events; every channel
        # starts over at 0 and every local stream is told.
        epoch = str(row[0])
        if epoch != self.lineage.epoch:
            self.lineage = Lineage(epoch)
            for channel in self.hub.channels():
                self.hub.relineage(channel, self.lineage)

    def _listen_forever(self) -> None:
        connection: psycopg.Connection[Any] | None = None
        reconnection = Reconnection(f"the database {self.alias!r}", "postgres")
        swept = checked = pruned = 0.0
        #: The channels of the sweep under way, not read yet.
        sweeping: list[str] = []
        while not self._closed:
            try:
                if connection is None:
                    connection = self._listening = self._connect_listener()
                    self._deliver(self._query_after(self.hub.positions()))
                    swept = checked = time.monotonic()
                    self._ready.set()
                    reconnection.back()
                notified = {
                    notify.payload
                    for notify in connection.notifies(
                        timeout=0.01 if sweeping else SWEEP_INTERVAL, stop_after=1
                    )
                    if notify.payload
                }
                if notified:
                    # Every notification already received: one query reads
                    # the events of all their channels.
                    notified.update(
                        notify.payload
                        for notify in connection.notifies(timeout=0)
                        if notify.payload
                    )
                now = time.monotonic()
                if now - checked >= SWEEP_INTERVAL:
                    self._check_epoch(connection)
                    checked = now
                if now - swept >= self._sweep_interval and not sweeping:
                    # Every channel, notified or not, a slice at a time: one
                    # query of thousands of channels would hold up delivery.
                    sweeping = self.hub.channels()
                    swept = now
                if sweeping:
                    notified.update(sweeping[:SWEEP_SLICE])
                    del sweeping[:SWEEP_SLICE]
                if notified:
                    # Only these: the cost of an event does not grow with
                    # the number of channels.
                    self._deliver(self._query_after(self.hub.positions(notified)))
                if now - pruned >= self.prune_interval:
                    self._prune()
                    pruned = now
            except (psycopg.Error, BroadcastError) as exc:
                self._ready.clear()
                if connection is not None:
                    connection.close()
                    connection = self._listening = None
                time.sleep(reconnection.lost("listening", exc))
            except Exception:
                logger.exception("The broadcast listener failed; it starts again.")
                time.sleep(0.5)
        if connection is not None:
            connection.close()

    def _prune(self) -> None:
        self._query(_PRUNE, [self.history, self.history])
        if self.max_age is not None:
            self._query(_PRUNE_AGE, [self.max_age])

    # Presence (postgres_presence.py).

    def presence_store(self) -> PostgresPresence:
        return PostgresPresence(self)

    def close(self) -> None:
        self._closed = True
        listener = self._listener
        if listener is not None:
            listener.join(SWEEP_INTERVAL + 1)
        with self._queries_lock:
            if self._queries is not None:
                self._queries.close()
                self._queries = None
