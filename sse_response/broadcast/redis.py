"""
RedisBackend: channels as Redis Streams, shared by every process and host
that uses the same Redis.

* Publishing runs one Lua script: it reads (or creates) the epoch key and
  ``XADD``\\ s the event with the stream id ``0-*``, so Redis itself assigns
  the next sequence number of the channel (``0-1``, ``0-2``, ...) in the same
  atomic step as the write, and trims the stream to about ``history``
  entries (``MAXLEN ~``).
* The epoch key holds a random token. A Redis that lost its data has lost
  that key too: the next publish, or the reader, writes a new token, and
  every stream learns that its positions no longer mean anything.
* One reader thread per process ``XREAD BLOCK``\\ s on the channels that
  have local subscribers, from the last position it handed out on each, and
  gives what it reads to the hub. A channel that gets its first local
  subscriber is added with ``CLIENT UNBLOCK`` sent from the other
  connection. After a lost connection the reader reconnects by itself and
  goes on from the same positions: what was stored meanwhile is delivered,
  what was trimmed meanwhile is announced with a reset, and a new epoch
  resets every stream.
* Two connections per process, whatever the number of subscribers and
  channels: the reader's, and one for publishing and replays (a pool of
  one, shared by every thread).

This is the only module that imports redis-py (``pip install
'sse_response[redis]'``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sse_response.broadcast.base import (
    BaseBackend,
    BroadcastError,
    Entry,
    Page,
    Snapshot,
)
from sse_response.broadcast.hub import Subscriber
from sse_response.broadcast.positions import new_epoch

__all__ = ["RedisBackend"]

logger = logging.getLogger("sse_response.broadcast")

# KEYS: the epoch key, the channel's stream. ARGV: a new epoch (used if the
# key is missing), the history length, the field name, its value.
_APPEND = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '0-*', ARGV[3], ARGV[4])
return {epoch, id}
"""

# KEYS: the epoch key. ARGV: a new epoch (used if the key is missing).
_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
return epoch
"""

_PAYLOAD = b"p"
_END = b"end"

#: How long a new stream waits for the reader to reach Redis before it ends
#: (its client retries).
CONNECT_WAIT = 5.0

#: How often, at most, the reader checks that the epoch is still there.
EPOCH_CHECK_INTERVAL = 1.0


def _seq(stream_id: bytes) -> int:
    return int(stream_id.rpartition(b"-")[2])


def _entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Entry]:
    return [
        (_seq(stream_id), fields.get(_PAYLOAD) if _END not in fields else None)
        for stream_id, fields in raw
    ]


class RedisBackend(BaseBackend):
    """
    Channels in Redis Streams at ``LOCATION`` (a ``redis://`` URL).

    ``OPTIONS``: ``history`` (entries kept per channel, at least; default
    1000), ``buffer`` (bytes that may wait for one local subscriber; default
    1 MiB), ``prefix`` of the keys (default ``"sse_response"``),
    ``socket_timeout`` in seconds for publishing and replays (default 5).
    """

    def __init__(self, location: str | None, params: Mapping[str, Any]) -> None:
        super().__init__(location, params)
        if not location:
            raise ValueError(
                "SSE_RESPONSE_BROADCAST needs a LOCATION for the RedisBackend, "
                "such as 'redis://127.0.0.1:6379/0'."
            )
        self.url = location
        self.prefix = str(self.options.get("prefix", "sse_response"))
        self.socket_timeout = float(self.options.get("socket_timeout", 5.0))
        self.block_ms = int(self.options.get("block_ms", 1000))
        #: The names of the connections (CLIENT LIST shows them).
        self.client_name = f"{self.prefix}-{os.getpid()}"
        self._epoch_key = f"{self.prefix}:epoch"
        self._channel_prefix = f"{self.prefix}:channel:"
        # No retries: a command resent after a lost reply could store an
        # event twice. A connection Redis closed is replaced when it is next
        # taken from the pool, so the first publish after a restart works.
        self._commands = redis.Redis(
            connection_pool=redis.BlockingConnectionPool.from_url(
                location,
                max_connections=1,
                timeout=self.socket_timeout * 2,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=min(self.socket_timeout, 2.0),
                retry=Retry(NoBackoff(), 0),
                client_name=f"{self.client_name}-publish",
            )
        )
        self._append_script = self._commands.register_script(_APPEND)
        self._epoch_script = self._commands.register_script(_EPOCH)
        self._start_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._reader_id: int | None = None
        #: Set while the reader is connected and the epoch is known.
        self._ready = threading.Event()
        self._closed = False

    def _key(self, channel: str) -> str:
        return self._channel_prefix + channel

    # Publishing.

    def append(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        field, value = (_PAYLOAD, payload) if payload is not None else (_END, b"")
        try:
            epoch, stream_id = self._append_script(
                keys=[self._epoch_key, self._key(channel)],
                args=[new_epoch(os.urandom(6)), self.history, field, value],
            )
        except redis.RedisError as exc:
            raise BroadcastError(
                f"The event for channel {channel!r} could not be stored in Redis "
                f"at {self.url}: {exc}"
            ) from exc
        return epoch.decode(), _seq(stream_id)

    # Subscribing.

    async def attach(self, subscriber: Subscriber) -> Snapshot:
        self._start_reader()
        unknown = self.hub.add(subscriber)
        if not subscriber.started:
            await asyncio.to_thread(self._prepare, unknown)
        with self.hub.lock:
            if not subscriber.started:
                raise BroadcastError(f"Redis at {self.url} cannot be reached.")
            assert subscriber.epoch is not None
            return Snapshot(
                subscriber.epoch,
                [subscriber.starts[channel] for channel in subscriber.channels],
            )

    def _prepare(self, channels: list[str]) -> None:
        """Wait for the reader, and find where the new ``channels`` stand."""
        if not self._ready.wait(CONNECT_WAIT):
            raise BroadcastError(f"Redis at {self.url} cannot be reached.")
        if not channels:
            return
        try:
            pipe = self._commands.pipeline(transaction=False)
            for channel in channels:
                pipe.xrevrange(self._key(channel), count=1)
            lasts = pipe.execute()
        except redis.RedisError as exc:
            raise BroadcastError(
                f"Redis at {self.url} cannot be reached: {exc}"
            ) from exc
        for channel, last in zip(channels, lasts, strict=True):
            self.hub.set_position(channel, _seq(last[0][0]) if last else 0)
        self._wake_reader()

    def _wake_reader(self) -> None:
        # The reader blocks in XREAD on the channels it knew; make it start
        # again with the new ones. If it is not blocked yet, it sees them
        # anyway, and at worst waits out its block (block_ms).
        reader_id = self._reader_id
        if reader_id is None:
            return
        try:
            self._commands.client_unblock(reader_id)
        except redis.RedisError:
            logger.debug("CLIENT UNBLOCK failed", exc_info=True)

    async def read(self, channel: str, after: int, limit: int) -> Page:
        return await asyncio.to_thread(self._read, channel, after, limit)

    def _read(self, channel: str, after: int, limit: int) -> Page:
        key = self._key(channel)
        try:
            pipe = self._commands.pipeline(transaction=False)
            pipe.xrange(key, min=f"(0-{after}", max="+", count=limit)
            pipe.xrevrange(key, count=1)
            raw, last = pipe.execute()
        except redis.RedisError as exc:
            raise BroadcastError(
                f"The history of channel {channel!r} could not be read from Redis "
                f"at {self.url}: {exc}"
            ) from exc
        return Page(_entries(raw), _seq(last[0][0]) if last else 0)

    # The reader.

    def _start_reader(self) -> None:
        if self._reader is not None:
            return
        with self._start_lock:
            if self._reader is None and not self._closed:
                self._reader = threading.Thread(
                    target=self._read_forever,
                    name="sse_response broadcast reader",
                    daemon=True,
                )
                self._reader.start()

    def _connect_reader(self) -> redis.Redis:
        connection = redis.Redis.from_url(
            self.url,
            single_connection_client=True,
            socket_timeout=self.block_ms / 1000 + self.socket_timeout,
            socket_connect_timeout=min(self.socket_timeout, 2.0),
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=f"{self.client_name}-read",
        )
        try:
            self._reader_id = int(connection.client_id())
            self._check_epoch(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_epoch(self, connection: redis.Redis) -> None:
        epoch: Any = connection.get(self._epoch_key)
        if epoch is None:
            epoch = self._epoch_script(
                keys=[self._epoch_key],
                args=[new_epoch(os.urandom(6))],
                client=connection,
            )
        # A different epoch: Redis lost its data; every channel starts over
        # at 0 and every local stream is told.
        self.hub.new_epoch(epoch.decode())

    def _read_forever(self) -> None:
        connection: redis.Redis | None = None
        pause = 0.05
        epoch_checked = 0.0
        while not self._closed:
            try:
                if connection is None:
                    connection = self._connect_reader()
                    epoch_checked = time.monotonic()
                    self._ready.set()
                    if pause > 0.05:
                        logger.warning("Reconnected to Redis at %s.", self.url)
                    pause = 0.05
                if time.monotonic() - epoch_checked > EPOCH_CHECK_INTERVAL:
                    self._check_epoch(connection)
                    epoch_checked = time.monotonic()
                positions = self.hub.positions()
                if not positions:
                    with self.hub.changed:
                        self.hub.changed.wait(EPOCH_CHECK_INTERVAL)
                    continue
                response: Any = connection.xread(
                    {
                        self._key(channel): f"0-{seq}"
                        for channel, seq in positions.items()
                    },
                    count=1000,
                    block=self.block_ms,
                )
                for key, raw in response or ():
                    channel = key.decode()[len(self._channel_prefix) :]
                    entries = _entries(raw)
                    position = positions.get(channel)
                    if (
                        position is not None
                        and entries
                        and entries[0][0] > position + 1
                    ):
                        # Trimmed while the reader was away or behind.
                        self.hub.gap(channel, entries[0][0] - 1)
                    self.hub.deliver(channel, entries)
            except redis.RedisError as exc:
                self._ready.clear()
                if connection is not None:
                    connection.close()
                    connection = None
                    logger.warning(
                        "Lost the connection to Redis at %s (%s); reconnecting.",
                        self.url,
                        exc,
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
            except Exception:
                logger.exception("The broadcast reader failed; it starts again.")
                time.sleep(0.5)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        self._closed = True
        self._wake_reader()
        with self.hub.changed:
            self.hub.changed.notify_all()
        reader = self._reader
        if reader is not None:
            reader.join(2)
        self._commands.close()
        self._commands.connection_pool.disconnect()
