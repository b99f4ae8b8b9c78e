"""
Presence: which streams listen to a channel, in every process that shares
the backend.

Each process keeps a registry of its own subscribed streams (channel ->
stream -> info). A backend with an outside service gives the registry a
:class:`PresenceStore`, where the registry writes, per channel, one record
for the whole process: its entries (the JSON info of each stream, ``null``
for a stream without one) and an expiry time taken from the service's clock.

* A join or a leave marks the channel dirty; a thread of the process writes
  the dirty channels within a short tick, in one round trip (per node on a
  cluster), so a storm of joins is a few writes, not one per stream. A
  joining stream waits for that write (at most :data:`JOIN_WAIT`) before its
  first event: it is present from the moment it is subscribed.
* Every ``presence_ttl / 3`` seconds the thread rewrites every channel of the
  process, in one round trip, with a new expiry ``presence_ttl`` seconds
  ahead: one write per process per interval, whatever the number of streams.
  A process that dies is dropped by the readers once its expiry passes: at
  most ``presence_ttl`` (30 s by default) after its last write.
* A read is one round trip to the channel's record: this process's entries
  are taken from the registry itself (exact, even before a leave is
  written), the other processes' from the store, those expired left out.

MemoryBackend has no store: the registry is the whole truth.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import db

from sse_response.body import refuse_in_event_loop
from sse_response.broadcast.positions import check_channel
from sse_response.encoding import encode

if TYPE_CHECKING:
    from sse_response.broadcast.base import BaseBackend

__all__ = [
    "DEFAULT_PRESENCE_TTL",
    "JOIN_EVENT",
    "LEAVE_EVENT",
    "MAX_INFO_BYTES",
    "InvalidPresenceError",
    "PresenceRegistry",
    "PresenceStore",
    "PresenceWriteError",
    "apresence",
    "apresence_count",
    "check_info",
    "presence",
    "presence_count",
    "presence_status",
]

logger = logging.getLogger("sse_response.broadcast")

#: Seconds after its last write that a process which stopped writing (it
#: died) is no longer listed, unless OPTIONS["presence_ttl"] says otherwise.
DEFAULT_PRESENCE_TTL = 30.0

#: The most bytes the JSON of one stream's info may take.
MAX_INFO_BYTES = 1024

#: The event types that announce a join and a leave (``announce=True``).
JOIN_EVENT = "presence-join"
LEAVE_EVENT = "presence-leave"

#: How long joins and leaves are gathered before they are written.
TICK = 0.02

#: How many channels one write of a refresh takes at least (more when the
#: refresh would not be done in half its interval otherwise).
REFRESH_SLICE = 500

#: How long a joining stream waits for its join to be written at most.
JOIN_WAIT = 5.0

#: How long the writer waits before it tries again after a failed write.
RETRY_PAUSE = 1.0


class InvalidPresenceError(ValueError):
    """A stream's presence info cannot be stored."""


class PresenceWriteError(Exception):
    """
    Some channels of a :meth:`PresenceStore.write` were not written, and the
    others were (one node of a cluster failed): ``channels`` are to be
    written again. A store raises it mixed with ``BroadcastError``.
    """

    def __init__(self, message: str, channels: Iterable[str]) -> None:
        super().__init__(message)
        self.channels = frozenset(channels)


def _find_unjsonable(value: Any, path: str) -> tuple[str, Any] | None:
    """The first field under ``value`` that JSON cannot hold, and its value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", key
            found = _find_unjsonable(item, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_unjsonable(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return None
    return path or "presence", value


def check_info(info: Any) -> str | None:
    """
    The JSON of a stream's ``presence=`` info (``None`` for none); raise
    :class:`InvalidPresenceError`, naming the field, for what JSON cannot
    hold, or for more than :data:`MAX_INFO_BYTES` bytes.
    """
    if info is None:
        return None
    found = _find_unjsonable(info, "")
    if found is not None:
        field, value = found
        raise InvalidPresenceError(
            f"presence: the field {field!r} holds a {type(value).__name__}, "
            "which JSON cannot hold; give a str, int, float, bool, None, "
            "list or dict with str keys."
        )
    try:
        text = json.dumps(info, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError) as exc:
        raise InvalidPresenceError(f"presence: {exc}") from None
    if len(text.encode()) > MAX_INFO_BYTES:
        raise InvalidPresenceError(
            f"presence: the info takes {len(text.encode())} bytes of JSON, more "
            f"than the {MAX_INFO_BYTES} allowed; keep an id and a display name, "
            "and look the rest up."
        )
    return text


class PresenceStore:
    """Where a backend with an outside service keeps the processes' records."""

    def write(
        self, process: str, records: Mapping[str, str | None], *, refresh: bool
    ) -> None:
        """
        Store, for each channel of ``records``, this process's entries (a
        JSON list; ``None``: it has none left there) with an expiry
        ``ttl`` seconds ahead, in one round trip (per node); ``refresh``:
        every channel of the process is written, and expired records may be
        dropped. Raise :class:`~sse_response.broadcast.BroadcastError`; one
        that is also a :class:`PresenceWriteError` when only the channels it
        names failed.
        """
        raise NotImplementedError

    def read(self, channel: str) -> dict[str, list[Any]]:
        """The entries of every process not expired, by process, in one round trip."""
        raise NotImplementedError

    def scan(self) -> dict[str, dict[str, list[Any]]]:
        """Every channel that has records not expired: its entries by process."""
        raise NotImplementedError


@dataclass(eq=False)
class Presence:
    """One stream's place in the registry."""

    channels: tuple[str, ...]
    #: The JSON of its info, or None.
    info: str | None
    announce: bool


class PresenceRegistry:
    """
    The streams of this process by channel, and the thread that writes them
    to the backend's :class:`PresenceStore` (none: the registry is all).
    """

    def __init__(
        self, backend: BaseBackend, store: PresenceStore | None, ttl: float
    ) -> None:
        self.backend = backend
        self.store = store
        self.ttl = ttl
        self.interval = ttl / 3
        #: This process, as the store knows it.
        self.process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._channels: dict[str, dict[Presence, None]] = {}
        self._dirty: dict[str, None] = {}
        self._announcements: list[tuple[str, bytes]] = []
        #: Resolved once the dirty channels are written.
        self._written: concurrent.futures.Future[None] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._next_refresh = 0.0
        #: The channels of the refresh under way, and how many a write takes.
        self._refreshing: list[str] = []
        self._slice = 1

    # The streams' side.

    def join(
        self, channels: tuple[str, ...], info: str | None, announce: bool
    ) -> tuple[Presence, concurrent.futures.Future[None] | None]:
        """
        Add a stream; return its place and, with a store, what resolves once
        the join is written.
        """
        stream = Presence(channels, info, announce)
        with self.lock:
            for channel in channels:
                self._channels.setdefault(channel, {})[stream] = None
            if self.store is None:
                written = None
            else:
                self._mark(channels)
                if self._written is None:
                    self._written = concurrent.futures.Future()
                written = self._written
        if announce:
            self._announce(channels, JOIN_EVENT, info)
        return stream, written

    def leave(self, stream: Presence) -> None:
        """Remove a stream (at once here; within a tick in the store)."""
        with self.lock:
            for channel in stream.channels:
                streams = self._channels.get(channel)
                if streams is not None:
                    streams.pop(stream, None)
                    if not streams:
                        del self._channels[channel]
            if self.store is not None:
                self._mark(stream.channels)
        if stream.announce:
            self._announce(stream.channels, LEAVE_EVENT, stream.info)

    def _mark(self, channels: Iterable[str]) -> None:
        # With the lock held.
        for channel in channels:
            self._dirty[channel] = None
        self._start()
        self._wake.notify()

    def _announce(
        self, channels: tuple[str, ...], event: str, info: str | None
    ) -> None:
        payload = encode({"event": event, "data": info if info is not None else "null"})
        if self.store is None:
            # In memory: at once (the join is known already).
            for channel in channels:
                self.backend.append(channel, payload)
            return
        with self.lock:
            # After the write of the join or leave it announces.
            self._announcements.extend((channel, payload) for channel in channels)

    # Reading.

    def local(self, channel: str) -> list[Any]:
        """This process's entries of ``channel``: decoded info or None, per stream."""
        with self.lock:
            infos = [stream.info for stream in self._channels.get(channel, ())]
        return [None if info is None else json.loads(info) for info in infos]

    def read(self, channel: str) -> dict[str, list[Any]]:
        """The entries of ``channel`` by process, this one first."""
        found = {self.process: self.local(channel)}
        if self.store is not None:
            for process, entries in self.store.read(channel).items():
                found.setdefault(process, entries)
        return found

    def scan(self) -> dict[str, dict[str, list[Any]]]:
        """Every channel with streams: its entries by process."""
        with self.lock:
            mine = list(self._channels)
        found: dict[str, dict[str, list[Any]]] = {}
        if self.store is not None:
            for channel, processes in self.store.scan().items():
                processes.pop(self.process, None)
                if processes:
                    found[channel] = processes
        for channel in mine:
            entries = self.local(channel)
            if entries:
                found.setdefault(channel, {})[self.process] = entries
        return found

    # The writer thread.

    def _start(self) -> None:
        # With the lock held.
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="sse_response-presence", daemon=True
            )
            self._thread.start()

    def _records(self, channels: Iterable[str]) -> dict[str, str | None]:
        # With the lock held.
        records: dict[str, str | None] = {}
        for channel in channels:
            streams = self._channels.get(channel)
            records[channel] = (
                None
                if not streams
                else "["
                + ",".join("null" if s.info is None else s.info for s in streams)
                + "]"
            )
        return records

    def _run(self) -> None:
        try:
            self._write_forever()
        finally:
            # The connections the announcements took in this thread (the
            # PostgresBackend publishes on Django's).
            db.connections.close_all()

    def _write_forever(self) -> None:
        assert self.store is not None
        failing = False
        while True:
            with self.lock:
                while not self._closed and not self._dirty and not self._refreshing:
                    wait = self._next_refresh - time.monotonic()
                    if wait <= 0:
                        break
                    self._wake.wait(wait)
                if self._closed:
                    return
            if self._dirty or self._refreshing:
                time.sleep(TICK)  # Gather the joins and leaves of a storm.
            with self.lock:
                now = time.monotonic()
                if now >= self._next_refresh and not self._refreshing:
                    # A refresh of every channel, spread over half the
                    # interval: thousands of channels in one write would
                    # hold the interpreter (and the streams) for a while.
                    self._refreshing = list(self._channels)
                    self._slice = max(
                        REFRESH_SLICE,
                        math.ceil(len(self._refreshing) * TICK * 2 / self.interval),
                    )
                    self._next_refresh = now + self.interval
                part = self._refreshing[: self._slice]
                del self._refreshing[: self._slice]
                refresh = bool(part)
                channels = dict(self._dirty)
                channels.update(dict.fromkeys(part))
                records = self._records(channels)
                self._dirty.clear()
                announcements, self._announcements = self._announcements, []
                written, self._written = self._written, None
            unwritten: Collection[str] = ()
            try:
                self.store.write(self.process, records, refresh=refresh)
            except Exception as exc:
                if not failing:
                    logger.warning(
                        "Presence cannot be written (%s); trying again every %s s.",
                        exc,
                        RETRY_PAUSE,
                    )
                failing = True
                # Only what failed is written again (a cluster's other
                # nodes took theirs), and only its announcements wait.
                unwritten = (
                    exc.channels if isinstance(exc, PresenceWriteError) else records
                )
                with self.lock:
                    for channel in unwritten:
                        self._dirty.setdefault(channel, None)
                    self._announcements[:0] = [
                        item for item in announcements if item[0] in unwritten
                    ]
                announcements = [
                    item for item in announcements if item[0] not in unwritten
                ]
            else:
                if failing:
                    logger.warning("Presence is written again.")
                    failing = False
            if written is not None:
                _resolve(written)  # Its stream goes on regardless.
            for channel, payload in announcements:
                try:
                    self.backend.append(channel, payload)
                except Exception as exc:
                    logger.warning(
                        "A presence event of %r could not be published: %s",
                        channel,
                        exc,
                    )
            if unwritten:
                time.sleep(RETRY_PAUSE)

    def close(self) -> None:
        """Stop writing, and drop this process's records (it leaves at once)."""
        with self.lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
            records = dict.fromkeys(self._channels)
            self._channels.clear()
        if thread is not None:
            thread.join(5)
            if self.store is not None and records:
                try:
                    self.store.write(self.process, records, refresh=False)
                except Exception as exc:
                    logger.warning("Presence could not be removed: %s", exc)


def _resolve(written: concurrent.futures.Future[None]) -> None:
    if not written.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            written.set_result(None)


async def wait_written(written: concurrent.futures.Future[None] | None) -> None:
    """Wait (at most :data:`JOIN_WAIT`) for a join to be written."""
    if written is None:
        return
    try:
        # Shielded: a stream cancelled meanwhile (its client left) must not
        # cancel what the other joins of the same write wait for.
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(written)), JOIN_WAIT)
    except asyncio.TimeoutError:
        logger.warning("A stream's presence was not written in %s s.", JOIN_WAIT)


# The public API.


def _sync_only(name: str) -> None:
    refuse_in_event_loop(
        f"{name}() asks the broadcast backend, which would block the "
        f"running event loop; use 'await a{name}()' in async code."
    )


def _read(channel: str) -> dict[str, list[Any]]:
    from sse_response.broadcast.backends import get_backend

    return get_backend().presence.read(check_channel(channel))


def _infos(found: dict[str, list[Any]]) -> list[Any]:
    return [info for entries in found.values() for info in entries if info is not None]


def presence(channel: str) -> list[Any]:
    """
    The ``presence=`` info of every stream subscribed to ``channel``, in
    every process that shares the backend: one entry per stream, streams
    without info left out, values as after a JSON round trip.
    """
    _sync_only("presence")
    return _infos(_read(channel))


async def apresence(channel: str) -> list[Any]:
    """:func:`presence` for async code."""
    return _infos(await asyncio.to_thread(_read, channel))


def presence_count(channel: str) -> int:
    """How many streams are subscribed to ``channel``, in every process."""
    _sync_only("presence_count")
    return sum(map(len, _read(channel).values()))


async def apresence_count(channel: str) -> int:
    """:func:`presence_count` for async code."""
    return sum(map(len, (await asyncio.to_thread(_read, channel)).values()))


def presence_status(*channels: str) -> dict[str, dict[str, list[Any]]]:
    """
    The entries of ``channels`` by process (every channel with streams, when
    none is given), for ``manage.py sse_status``.
    """
    from sse_response.broadcast.backends import get_backend

    registry = get_backend().presence
    if not channels:
        return registry.scan()
    return {channel: registry.read(check_channel(channel)) for channel in channels}
