"""
RedisBackend: events delivered by Redis PUB/SUB, history kept in Redis
Streams, on one Redis, behind Sentinels, or on a Redis Cluster.

* Publishing runs one Lua script (``lua/publish.lua``) on keys that all
  carry the channel's hash tag: it takes the channel's next sequence
  number, stores the event in the channel's history stream (trimmed to about
  ``history`` entries) and publishes it with its sequence number and epoch,
  in one atomic step.
* Each channel has its own epoch. A Redis that lost a channel's keys starts
  it again in a new epoch; one that is not the server that stored its last
  event (a replica that took over, a server restarted from its files) starts
  a new epoch that continues the old one from its last sequence number, so
  that a client that saw an event the failover lost is told, and no number
  is given twice.
* The :class:`Reader`, one thread per process, holds one PUB/SUB connection
  per node and subscribes to a channel when it gets its first subscriber in
  the process, and unsubscribes when it loses its last. History is read only
  to find where a new channel stands, to resume a client, to fill a hole in
  what PUB/SUB delivered, and after a lost connection, for every channel of
  that node from where it stood.
* Per process and node: one command connection (publishing, lookups,
  replays; shared by every thread) and one PUB/SUB connection.

This package is the only one that imports redis-py (``pip install
'sse_response[redis]'``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import redis

from sse_response.broadcast.base import (
    BaseBackend,
    BroadcastError,
    Entry,
    Page,
    Snapshot,
)
from sse_response.broadcast.hub import Subscriber
from sse_response.broadcast.positions import Lineage, new_epoch
from sse_response.broadcast.redis.presence import RedisPresence
from sse_response.broadcast.redis.reader import HEALTH_INTERVAL, Reader
from sse_response.broadcast.redis.topology import (
    CONNECTION_ERRORS,
    Command,
    Node,
    Topology,
    make_topology,
    moved,
)
from sse_response.broadcast.redis.wire import entries, meta_position

__all__ = ["RedisBackend"]

logger = logging.getLogger("sse_response.broadcast")

_PUBLISH = (resources.files(__package__) / "lua" / "publish.lua").read_text()

#: How long a new stream waits for its channels to be subscribed before it
#: ends (its client retries).
CONNECT_WAIT = 5.0

#: How many times a command follows a cluster's redirections.
MAX_REDIRECTIONS = 5

#: The pauses before a command refused with TRYAGAIN (its keys are split
#: between two nodes while their slot migrates, for a few milliseconds) is
#: sent again: about 0.4 s in all, then the error stands.
TRYAGAIN_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2)

#: The fields of a channel's meta hash that say where it stands.
_META_FIELDS = ("e", "s", "b", "p")


class RedisBackend(BaseBackend):
    """
    Channels in Redis at ``LOCATION``: a ``redis://`` URL (``rediss://``
    for TLS, ``unix://`` for a socket), or a list of them (the seed nodes of
    a cluster, or the Sentinels).

    ``OPTIONS``: ``history`` (entries kept per channel, at least; default
    1000), ``buffer`` (bytes that may wait for one local subscriber; default
    1 MiB), ``prefix`` of the keys (default ``"sse_response"``),
    ``socket_timeout`` in seconds (default 5), ``health_check_interval``
    (seconds of silence after which a PUB/SUB connection is sent a PING;
    default 5), ``cluster`` (``True`` for a
    Redis Cluster), ``sentinel`` (the master's name, when ``LOCATION`` lists
    Sentinels) and ``sentinel_kwargs`` (connection arguments for the
    Sentinels themselves, such as a ``password``).
    """

    def __init__(
        self, location: str | Sequence[str] | None, params: Mapping[str, Any]
    ) -> None:
        super().__init__(None, params)
        if not location:
            raise ValueError(
                "SSE_RESPONSE_BROADCAST needs a LOCATION for the RedisBackend, "
                "such as 'redis://127.0.0.1:6379/0'."
            )
        self.location = location if isinstance(location, str) else ", ".join(location)
        self.prefix = str(self.options.get("prefix", "sse_response"))
        self.health_interval = float(
            self.options.get("health_check_interval", HEALTH_INTERVAL)
        )
        #: The names of the connections (CLIENT LIST shows them).
        self.client_name = f"{self.prefix}-{os.getpid()}"
        self.topology: Topology = make_topology(
            location, self.options, name=self.client_name
        )
        self.url = self.topology.describe()
        self._script_sha = hashlib.sha1(_PUBLISH.encode()).hexdigest()
        self._start_lock = threading.Lock()
        self._reader: Reader | None = None
        self._closed = False

    # Keys: every key of a channel carries its name as the hash tag.

    def _base(self, channel: str) -> str:
        return f"{self.prefix}:{{{channel}}}"

    def pubsub_channel(self, channel: str) -> str:
        return self._base(channel)

    def channel_of(self, pubsub_channel: bytes) -> str:
        text = pubsub_channel.decode()
        return text[len(self.prefix) + 2 : -1]

    def meta_key(self, channel: str) -> str:
        return self._base(channel) + ":meta"

    def log_key(self, channel: str) -> str:
        return self._base(channel) + ":log"

    # Commands, wherever the channel lives.

    def on_node(
        self,
        channel: str,
        commands: Callable[[str], Sequence[Command]],
        *,
        node: Node | None = None,
    ) -> list[Any]:
        """
        Run ``commands`` in one round trip on the node of ``channel``,
        following a cluster's redirections and sending again, after a short
        pause, what a migrating slot refused with ``TRYAGAIN`` (a redirected
        or refused command did not run, so sending it again is safe). Error
        replies come back as :class:`redis.ResponseError` values; a lost
        connection raises.

        With ``node`` given (the reader's reads, on the node where it
        subscribed to the channel), a ``MOVED`` is raised as
        :class:`NodeMoved` instead of followed: that node does not serve the
        channel, so the subscription there must move too. (A replica accepts
        ``SSUBSCRIBE`` for its master's slots, so a slot map that is stale
        after a failover can put a subscription on the former master, where
        what the new master publishes may never come.)
        """
        pinned = node is not None
        asking = False
        pauses = iter(TRYAGAIN_PAUSES)
        redirections = 0
        while redirections < MAX_REDIRECTIONS:
            if node is None:
                node = self.topology.node_for(channel)
            try:
                replies = node.execute(commands, asking=asking)
            except CONNECTION_ERRORS:
                # The server may have failed: find the nodes again first
                # next time.
                self.topology.stale = True
                raise
            if any(isinstance(r, redis.exceptions.TryAgainError) for r in replies):
                # A multi-key command (the publish script) whose keys are
                # half moved: it did not run. Every batch sent here is
                # reads, one publish alone, or presence writes that may run
                # twice, so the whole goes again, to the same node.
                pause = next(pauses, None)
                if pause is not None:
                    time.sleep(pause)
                    continue
            asking = False
            redirections += 1
            redirect = next(
                (
                    moved(reply)
                    for reply in replies
                    if isinstance(reply, redis.ResponseError) and moved(reply)
                ),
                None,
            )
            if redirect is None:
                return replies
            if pinned and not redirect.asking:
                self.topology.stale = True
                raise redirect
            if not redirect.asking:
                self.topology.refresh()
            node = self.topology.node_at(redirect.address)
            asking = redirect.asking
        raise redis.ConnectionError(
            f"The channel {channel!r} was redirected {MAX_REDIRECTIONS} times."
        )

    # Publishing.

    def append(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        kind, value = (b"p", payload) if payload is not None else (b"e", b"")
        epoch = new_epoch(os.urandom(6))
        publish = "SPUBLISH" if self.topology.sharded else "PUBLISH"
        keys = (self.meta_key(channel), self.log_key(channel))

        def script(identity: str, sha: str) -> list[Command]:
            return [
                (
                    "EVALSHA",
                    sha,
                    2,
                    *keys,
                    identity,
                    epoch,
                    self.history,
                    kind,
                    value,
                    self.pubsub_channel(channel),
                    publish,
                    f"{time.time():.6f}",
                )
            ]

        try:
            (reply,) = self.on_node(
                channel, lambda identity: script(identity, self._script_sha)
            )
            if isinstance(reply, redis.exceptions.NoScriptError):
                # A server that does not know the script yet: it did not run.
                (reply,) = self.on_node(
                    channel,
                    lambda identity: [
                        ("SCRIPT", "LOAD", _PUBLISH),
                        *script(identity, self._script_sha),
                    ],
                )[1:]
            if isinstance(reply, redis.ResponseError):
                raise reply
        except redis.RedisError as exc:
            raise BroadcastError(
                f"The event for channel {channel!r} could not be stored in Redis "
                f"({self.url}): {exc}"
            ) from exc
        stored_epoch, seq = reply
        return stored_epoch.decode(), int(seq)

    # Subscribing.

    async def attach(self, subscriber: Subscriber) -> Snapshot:
        reader = self._start_reader()
        if self.hub.add(subscriber):
            reader.wake()
        if not subscriber.started and not await self.hub.wait_started(
            subscriber, CONNECT_WAIT
        ):
            raise BroadcastError(f"Redis ({self.url}) cannot be reached.")
        return Snapshot.of(subscriber)

    def detach(self, subscriber: Subscriber) -> None:
        super().detach(subscriber)
        # Unsubscribing from channels nobody listens to can wait: the reader
        # does it when it next wakes.

    async def read(self, channel: str, after: int, limit: int) -> Page:
        return await asyncio.to_thread(self._read, channel, after, limit)

    def _read(self, channel: str, after: int, limit: int) -> Page:
        try:
            ((found, last, _),) = self.histories([(channel, after)], limit)
        except redis.RedisError as exc:
            raise BroadcastError(
                f"The history of channel {channel!r} could not be read from Redis "
                f"({self.url}): {exc}"
            ) from exc
        return Page(found, last)

    def where(
        self, channels: Sequence[str], node: Node
    ) -> dict[str, tuple[int, Lineage]]:
        """Where ``channels`` (all served by ``node``) stand, in one round trip."""
        replies = self.on_node(
            channels[0],
            lambda _: [
                ("HMGET", self.meta_key(channel), *_META_FIELDS) for channel in channels
            ],
            node=node,
        )
        found = {}
        for channel, reply in zip(channels, replies, strict=True):
            if isinstance(reply, redis.ResponseError):
                raise reply
            found[channel] = meta_position(reply)
        return found

    def histories(
        self,
        reads: Sequence[tuple[str, int]],
        limit: int,
        *,
        node: Node | None = None,
        until: int | None = None,
    ) -> list[tuple[list[Entry], int, Lineage]]:
        """
        For each ``(channel, position)`` of ``reads``, in one round trip: up
        to ``limit`` stored entries after the position (and up to
        ``until``), the channel's last sequence number and its lineage.
        Several channels must all be served by ``node`` (the reader's
        catch-up, on the node where it subscribed them). An error reply is
        raised.
        """
        assert node is not None or len(reads) == 1
        high = "+" if until is None else f"0-{until}"

        def commands(_: str) -> list[Command]:
            batch: list[Command] = []
            for channel, after in reads:
                batch.append(
                    (
                        "XRANGE",
                        self.log_key(channel),
                        f"(0-{after}",
                        high,
                        "COUNT",
                        limit,
                    )
                )
                batch.append(("HMGET", self.meta_key(channel), *_META_FIELDS))
            return batch

        replies = self.on_node(reads[0][0], commands, node=node)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return [
            (entries(raw), *meta_position(meta))
            for raw, meta in zip(replies[::2], replies[1::2], strict=True)
        ]

    # Presence (redis/presence.py).

    def presence_store(self) -> RedisPresence:
        return RedisPresence(self)

    # The reader.

    def _start_reader(self) -> Reader:
        reader = self._reader
        if reader is not None:
            return reader
        with self._start_lock:
            if self._reader is None:
                if self._closed:
                    raise BroadcastError("The broadcast backend is closed.")
                self._reader = Reader(self)
                self._reader.start()
            return self._reader

    def close(self) -> None:
        self._closed = True
        reader = self._reader
        if reader is not None:
            reader.stop()
        self.topology.close()
