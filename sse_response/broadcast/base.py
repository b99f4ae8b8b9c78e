"""
The contract of a broadcast backend, in the manner of Django's cache
backends: ``SSE_RESPONSE_BROADCAST`` names the class (``BACKEND``), where its
service is (``LOCATION``) and its ``OPTIONS``.

A backend stores the events of each channel with a sequence number that it
assigns atomically with the write (1, 2, 3, ... per channel), keeps a bounded
history of them for replay, and feeds every event it stores, in order, to
its :class:`~sse_response.broadcast.hub.LocalHub`, the one fan-out point of
the process. A channel's epoch changes whenever its history may have been
lost, so that ids written before can be told from ids written after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sse_response.broadcast.hub import LocalHub, Subscriber
from sse_response.broadcast.positions import Lineage
from sse_response.broadcast.presence import DEFAULT_PRESENCE_TTL

if TYPE_CHECKING:
    from sse_response.broadcast.presence import PresenceRegistry, PresenceStore

__all__ = [
    "DEFAULT_BUFFER",
    "DEFAULT_HISTORY",
    "BaseBackend",
    "BroadcastError",
    "Entry",
    "Page",
    "Snapshot",
]

#: Events kept per channel for replay, unless OPTIONS["history"] says otherwise.
DEFAULT_HISTORY = 1000

#: Bytes of events that may wait for one subscriber before it is cut off as
#: too slow, unless OPTIONS["buffer"] says otherwise.
DEFAULT_BUFFER = 1024 * 1024

#: A stored entry: its sequence number and its payload, the encoded event
#: without an id line (``None``: an order to end the channel's streams).
Entry = tuple[int, "bytes | None"]


class BroadcastError(Exception):
    """An event could not be stored, or the backend cannot be reached."""


@dataclass(frozen=True)
class Page:
    """Stored entries after a position, and the channel's last sequence number."""

    entries: list[Entry]
    last_seq: int


@dataclass(frozen=True)
class Snapshot:
    """
    Where a new subscriber starts: for each of its channels, the lineage of
    its sequence numbers and the position after which every event reaches
    it live.
    """

    lineages: list[Lineage]
    starts: list[int]

    @classmethod
    def of(cls, subscriber: Subscriber) -> Snapshot:
        """The snapshot of a subscriber whose start is known on every channel."""
        channels = subscriber.channels
        return cls(
            [subscriber.lineages[channel] for channel in channels],
            [subscriber.starts[channel] for channel in channels],
        )


class BaseBackend:
    """
    The base class of broadcast backends.

    ``location`` is the ``LOCATION`` setting and ``params`` the whole
    setting; ``OPTIONS`` may hold ``history`` (events kept per channel,
    default 1000), ``buffer`` (bytes that may wait for one subscriber,
    default 1 MiB) and ``presence_ttl`` (seconds after which a process that
    stopped writing its presence is no longer listed, default 30); a backend
    may read more.

    Subclasses implement :meth:`append`, :meth:`attach` and :meth:`read`,
    and may override :meth:`aappend` and :meth:`detach`.
    """

    def __init__(self, location: str | None, params: Mapping[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        self.location = location
        self.options = options
        self.history = int(options.get("history", DEFAULT_HISTORY))
        self.buffer = int(options.get("buffer", DEFAULT_BUFFER))
        self.hub = LocalHub()
        self.presence_ttl = float(options.get("presence_ttl", DEFAULT_PRESENCE_TTL))
        self._presence: PresenceRegistry | None = None

    def append(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        """
        Store ``payload`` as the next entry of ``channel`` and return the
        channel's epoch and the sequence number it was given. Return only once it is
        stored; raise :class:`BroadcastError` when it cannot be. Every
        process's hub then delivers it to its subscribers of the channel.
        """
        raise NotImplementedError("subclasses of BaseBackend must provide append()")

    async def aappend(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        """:meth:`append` for async code; by default in a worker thread."""
        return await asyncio.to_thread(self.append, channel, payload)

    async def attach(self, subscriber: Subscriber) -> Snapshot:
        """
        Add ``subscriber`` to the hub, so that it gets every event stored
        from now on, and return where it starts. Raise
        :class:`BroadcastError` when the backend cannot be reached.
        """
        raise NotImplementedError("subclasses of BaseBackend must provide attach()")

    def detach(self, subscriber: Subscriber) -> None:
        """Stop delivering to ``subscriber``."""
        self.hub.remove(subscriber)

    async def read(self, channel: str, after: int, limit: int) -> Page:
        """
        Return up to ``limit`` stored entries of ``channel`` with sequence
        numbers above ``after``, oldest first, in one round trip to the
        backend's storage, and the channel's last sequence number.
        """
        raise NotImplementedError("subclasses of BaseBackend must provide read()")

    def close(self) -> None:
        """Release what the backend holds (connections, threads)."""

    # Presence (see presence.py).

    @property
    def presence(self) -> PresenceRegistry:
        """The registry of this process's streams, made on first use."""
        registry = self._presence
        if registry is None:
            from sse_response.broadcast.presence import PresenceRegistry

            with self.hub.lock:
                registry = self._presence
                if registry is None:
                    registry = self._presence = PresenceRegistry(
                        self, self.presence_store(), self.presence_ttl
                    )
        return registry

    def presence_store(self) -> PresenceStore | None:
        """
        Where the processes' presence records are kept; ``None`` (the
        default): in this process only.
        """
        return None

    def close_presence(self) -> None:
        """Drop this process's presence records (before :meth:`close`)."""
        if self._presence is not None:
            self._presence.close()
