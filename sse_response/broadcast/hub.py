"""
The local hub: one per backend in each process, it hands every event of a
channel to the streams of this process that subscribed to it.

Events come in from any thread (a publisher, the Redis reader), and
subscribers live on any event loop (the ASGI server's, or a WSGI stream's
own). So each subscriber's buffer is filled in the thread of whoever
delivers, under the hub's lock, and only the wake-up crosses to the
subscriber's loop: one ``call_soon_threadsafe`` per loop per delivery,
whatever the number of subscribers on that loop. A loop that is not running
(a WSGI stream whose server thread is blocked writing to a slow client) thus
never accumulates callbacks, only its subscriber's bounded buffer.

A subscriber whose buffer passes its limit is cut off at once: its buffer is
dropped, it gets nothing more, and its stream ends with ``retry:`` so that
its client reconnects and replays what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Iterable

from sse_response.broadcast.positions import Lineage

__all__ = ["EPOCH", "EVENT", "GAP", "RENAME", "Item", "LocalHub", "Subscriber"]

#: Kinds of the items a subscriber receives, each (kind, channel, number,
#: payload, published): published is the event's time of publishing
#: (``time.time()``, for the publish-to-send lag), 0.0 where it is not known.
EVENT = 0  # (EVENT, channel, seq, payload, published): payload None ends
#            the stream
EPOCH = 1  # (EPOCH, channel, base, epoch, 0.0): the channel's history was
#            lost; it goes on in a new epoch from position base
GAP = 2  # (GAP, channel, seq, None, 0.0): what came before seq is gone
RENAME = 3  # (RENAME, channel, base, epoch, 0.0): the channel goes on in a
#             new epoch that holds its positions up to base

Item = tuple[int, str, int, bytes | str | None, float]

#: How many bytes of events one take() returns at most, so that a stream
#: hands the server chunks of a reasonable size.
TAKE_BUDGET = 64 * 1024


class Subscriber:
    """
    One stream's place in the hub: the channels it listens to and the
    events waiting for it. Created on the stream's event loop.
    """

    __slots__ = (
        "_waiter",
        "channels",
        "items",
        "limit",
        "lineages",
        "loop",
        "overflowed",
        "size",
        "starts",
    )

    def __init__(self, channels: tuple[str, ...], limit: int) -> None:
        self.channels = channels
        self.loop = asyncio.get_running_loop()
        #: The most bytes of events that may wait here.
        self.limit = limit
        self.items: deque[Item] = deque()
        self.size = 0
        self.overflowed = False
        self._waiter: asyncio.Future[None] | None = None
        #: The lineage of each channel, and the position on it after which
        #: every item reaches this subscriber: set by the hub, under its
        #: lock, when each becomes known.
        self.lineages: dict[str, Lineage] = {}
        self.starts: dict[str, int] = {}

    @property
    def started(self) -> bool:
        """Whether its start on every channel is known."""
        return len(self.starts) == len(self.channels)


def _wake(futures: Iterable[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class _Channel:
    __slots__ = ("lineage", "position", "subscribers")

    def __init__(self) -> None:
        #: The last sequence number handed to the subscribers (None: unknown
        #: yet, for a channel the backend has still to look up), and the
        #: lineage it belongs to.
        self.position: int | None = None
        self.lineage = Lineage("")
        self.subscribers: dict[Subscriber, None] = {}


class LocalHub:
    """
    The subscribers of one process, by channel, and the position of each
    channel up to which they have been given its events.

    Every method is thread-safe. ``lock`` is reentrant, so a backend can hold
    it around a store and its :meth:`deliver`, making the two one step for
    the subscribers that attach meanwhile.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._channels: dict[str, _Channel] = {}
        #: Channels that got their first subscriber or lost their last one
        #: since the backend last asked (:meth:`take_changes`), whichever
        #: happened last: what they are now says which.
        self._changed: dict[str, None] = {}

    # Subscribers.

    def add(self, subscriber: Subscriber) -> list[str]:
        """Add ``subscriber``; return its channels whose position is unknown."""
        unknown = []
        with self.lock:
            for channel in subscriber.channels:
                state = self._channels.get(channel)
                if state is None:
                    state = self._channels[channel] = _Channel()
                    self._changed[channel] = None
                state.subscribers[subscriber] = None
                if state.position is None:
                    unknown.append(channel)
                else:
                    subscriber.starts[channel] = state.position
                    subscriber.lineages[channel] = state.lineage
        return unknown

    def remove(self, subscriber: Subscriber) -> None:
        """Stop delivering to ``subscriber``; forget channels nobody listens to."""
        with self.lock:
            self._remove(subscriber)

    def _remove(self, subscriber: Subscriber) -> None:
        for channel in subscriber.channels:
            state = self._channels.get(channel)
            if state is not None:
                state.subscribers.pop(subscriber, None)
                if not state.subscribers:
                    del self._channels[channel]
                    self._changed[channel] = None

    def take_changes(self) -> tuple[list[str], list[str]]:
        """
        The channels that got their first subscriber, and those that lost
        their last one, since the last call (a backend that subscribes to
        channels on its service follows them so). A channel that did both,
        in any order and any number of times, is given as what it is now:
        added if it has subscribers (its position is unknown again, to be
        looked up), dropped if it has none, so that nothing stays subscribed
        with nobody listening.
        """
        with self.lock:
            added: list[str] = []
            dropped: list[str] = []
            for channel in self._changed:
                (added if channel in self._channels else dropped).append(channel)
            self._changed.clear()
            return added, dropped

    def channels(self) -> list[str]:
        """Every channel that has a subscriber."""
        with self.lock:
            return list(self._channels)

    def position(self, channel: str) -> int | None:
        with self.lock:
            state = self._channels.get(channel)
            return None if state is None else state.position

    def state(self, channel: str) -> tuple[int, Lineage] | None:
        """A channel's position and lineage (``None``: unknown or unheard)."""
        with self.lock:
            state = self._channels.get(channel)
            if state is None or state.position is None:
                return None
            return state.position, state.lineage

    def set_position(self, channel: str, position: int, lineage: Lineage) -> int | None:
        """
        Set the position and lineage of a channel whose position is unknown;
        return the channel's position (``None`` if nobody listens to it any
        more).
        """
        with self.lock:
            state = self._channels.get(channel)
            if state is None:
                return None
            if state.position is None:
                state.position = position
                state.lineage = lineage
                wake: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
                for subscriber in state.subscribers:
                    subscriber.starts[channel] = position
                    subscriber.lineages[channel] = lineage
                    waiter = subscriber._waiter
                    if waiter is not None and subscriber.started:
                        subscriber._waiter = None
                        wake.setdefault(subscriber.loop, []).append(waiter)
                self._wake(wake)
            return state.position

    async def wait_started(self, subscriber: Subscriber, timeout: float) -> bool:
        """
        Wait until the start of ``subscriber`` is known on every channel (a
        backend looks them up); return whether it was within ``timeout``
        seconds.
        """
        loop = subscriber.loop
        deadline = loop.time() + timeout
        while True:
            with self.lock:
                if subscriber.started:
                    return True
                waiter = subscriber._waiter = loop.create_future()
            try:
                await asyncio.wait_for(waiter, max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                return subscriber.started
            finally:
                subscriber._waiter = None

    def positions(self, channels: Iterable[str] | None = None) -> dict[str, int]:
        """
        The position of each channel that has listeners and a known position:
        of ``channels``, or of every channel.
        """
        with self.lock:
            if channels is None:
                return {
                    channel: state.position
                    for channel, state in self._channels.items()
                    if state.position is not None
                }
            found = {}
            for channel in channels:
                state = self._channels.get(channel)
                if state is not None and state.position is not None:
                    found[channel] = state.position
            return found

    def subscriber_count(self, *, started: bool = False) -> int:
        """How many subscribers there are (``started``: whose start is known)."""
        with self.lock:
            return len(
                {
                    sub
                    for state in self._channels.values()
                    for sub in state.subscribers
                    if sub.started or not started
                }
            )

    # Delivery, from any thread.

    def deliver(
        self,
        channel: str,
        entries: Iterable[tuple[int, bytes | None]],
        lineage: Lineage | None = None,
        published: float = 0.0,
    ) -> int:
        """
        Hand the stored ``entries`` (sequence number and payload, in order)
        of ``channel`` to its subscribers; skip those already handed. Return
        the channel's position after them (-1 if nobody listens to it).
        ``lineage`` is that of the entries, when it may have changed;
        ``published``, when the (first of the) entries was published, if
        known.
        """
        with self.lock:
            state = self._channels.get(channel)
            if state is None or state.position is None:
                return -1
            if lineage is not None and lineage != state.lineage:
                self._relineage(state, channel, lineage)
            position = state.position
            assert position is not None
            items: list[Item] = []
            for seq, payload in entries:
                if seq > position:
                    items.append((EVENT, channel, seq, payload, published))
                    position = seq
            state.position = position
            if items:
                self._push(state.subscribers, items)
            return position

    def gap(self, channel: str, position: int) -> None:
        """Tell the subscribers of ``channel``: entries to ``position`` are gone."""
        with self.lock:
            state = self._channels.get(channel)
            if state is None:
                return
            state.position = position
            self._push(state.subscribers, [(GAP, channel, position, None, 0.0)])

    def relineage(self, channel: str, lineage: Lineage) -> None:
        """
        ``channel`` goes on in ``lineage``: if that does not hold the
        position handed out so far (its history was lost), the channel goes
        on from the lineage's base and its subscribers are told.
        """
        with self.lock:
            state = self._channels.get(channel)
            if (
                state is not None
                and state.position is not None
                and lineage != state.lineage
            ):
                self._relineage(state, channel, lineage)

    def _relineage(self, state: _Channel, channel: str, lineage: Lineage) -> None:
        # Called with the lock held, for a channel whose position is known.
        position = state.position
        assert position is not None
        old = state.lineage
        state.lineage = lineage
        if lineage.holds(old.epoch, position):
            item: Item = (RENAME, channel, lineage.base, lineage.epoch, 0.0)
        else:
            state.position = lineage.base if old.epoch == lineage.prev else 0
            item = (EPOCH, channel, state.position, lineage.epoch, 0.0)
        self._push(state.subscribers, [item])

    def _push(self, subscribers: Iterable[Subscriber], items: list[Item]) -> None:
        # Called with the lock held.
        size = 0
        for item in items:
            payload = item[3]
            if isinstance(payload, bytes):
                size += len(payload)
        wake: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        cut_off = []
        for subscriber in subscribers:
            if subscriber.size + size > subscriber.limit and subscriber.items:
                # Too slow: drop what waits, so memory stays flat; its
                # client will replay from its last id.
                subscriber.overflowed = True
                subscriber.items.clear()
                subscriber.size = 0
                cut_off.append(subscriber)
            else:
                subscriber.items.extend(items)
                subscriber.size += size
            waiter = subscriber._waiter
            if waiter is not None:
                subscriber._waiter = None
                wake.setdefault(subscriber.loop, []).append(waiter)
        for subscriber in cut_off:
            self._remove(subscriber)
        self._wake(wake)

    @staticmethod
    def _wake(
        wake: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]],
    ) -> None:
        # One callback per loop, whatever the number of its subscribers.
        for loop, futures in wake.items():
            # A closed loop: its streams are over.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, futures)

    # The subscriber's side, on its loop.

    async def take(self, subscriber: Subscriber) -> list[Item] | None:
        """
        Wait for items and return those waiting (up to about 64 KiB of
        events); ``None`` once the subscriber was cut off for being slow.
        """
        while True:
            with self.lock:
                if subscriber.overflowed:
                    return None
                items = subscriber.items
                if items:
                    if subscriber.size <= TAKE_BUDGET:
                        taken = list(items)
                        items.clear()
                        subscriber.size = 0
                        return taken
                    return self._take_some(subscriber)
                waiter = subscriber._waiter = subscriber.loop.create_future()
            try:
                await waiter
            finally:
                subscriber._waiter = None

    @staticmethod
    def _take_some(subscriber: Subscriber) -> list[Item]:
        items = subscriber.items
        taken: list[Item] = []
        size = 0
        while items and size < TAKE_BUDGET:
            item = items.popleft()
            payload = item[3]
            if isinstance(payload, bytes):
                size += len(payload)
            taken.append(item)
        subscriber.size -= size
        return taken
