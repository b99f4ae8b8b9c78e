"""
The reader of a RedisBackend: one thread per process that holds one PUB/SUB
connection per node, follows the hub's channels (subscribing to a channel
when it gets its first subscriber in the process, unsubscribing when it
loses its last), and hands what it receives to the hub.

A channel is subscribed before its position is looked up, so every event
stored after the lookup reaches it; messages that arrive between the two are
held, then handed on past the position found. A message that skips sequence
numbers (one was missed) is preceded by what history holds in between, and
after a lost connection every channel of that node is read from history from
where it stood (pipelined, many channels per round trip), then goes on live.

A connection is lost when it fails, and also when it stays silent: one that
gave nothing for a health interval is sent a PING, and one that still gives
nothing is dropped (a NAT or a host gone without a word never closes it).
The nodes are looked up again every health interval too; when they changed
(a failover that broke no connection of this process, a resharding), every
channel whose node is another one moves there.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis

from sse_response.broadcast.base import Entry
from sse_response.broadcast.positions import Lineage
from sse_response.broadcast.reconnect import FIRST_PAUSE, Reconnection
from sse_response.broadcast.redis.topology import (
    CONNECTION_ERRORS,
    Node,
    NodeMoved,
    moved,
)
from sse_response.broadcast.redis.wire import parse_message

if TYPE_CHECKING:
    from sse_response.broadcast.redis.backend import RedisBackend

__all__ = ["Reader"]

logger = logging.getLogger("sse_response.broadcast")

#: How long the reader sleeps with nothing to do (it is woken for new
#: channels; channels that lost their last subscriber wait this long).
IDLE_WAIT = 1.0

#: How long a PUB/SUB connection may be silent before the reader sends it a
#: PING, unless OPTIONS["health_check_interval"] says otherwise. A link on
#: which nothing (the pong, a message) comes back within the larger of this
#: and the socket timeout is taken for lost, and its channels catch up from
#: history on a new one: a connection that a NAT or a load balancer dropped
#: without a word, or to a host that vanished, is found within about 10 s
#: (the issue's bar for events to flow again after a failover), at the cost
#: of one PING per idle connection every 5 s.
HEALTH_INTERVAL = 5.0

#: How many history entries one catch-up read takes at most, when it reads
#: one channel (filling a hole).
READ_LIMIT = 1000

#: After a lost connection, every channel of the node is caught up: this
#: many per round trip (pipelined), each read CATCH_UP_COUNT entries at a
#: time (more when fewer are left to read), so that one reply holds about
#: 10,000 entries at most. 20,000 channels read one round trip each held
#: delivery up for as many round trips.
CATCH_UP_BATCH = 100
CATCH_UP_COUNT = 100

#: How many reads one channel's catch-up takes at most; what is left then
#: is read when its next message shows the hole.
CATCH_UP_ROUNDS = 100

_MESSAGES = (b"message", b"smessage")
_SUBSCRIBED = (b"subscribe", b"ssubscribe")
_UNSUBSCRIBED = (b"unsubscribe", b"sunsubscribe")


class _Link:
    """The PUB/SUB connection to one node, and the channels it carries."""

    def __init__(self, node: Node, reconnection: Reconnection) -> None:
        self.node = node
        self.connection: redis.Connection | None = None
        #: Channels subscribed, or asked for, on this node.
        self.channels: set[str] = set()
        #: Asked for and not confirmed yet.
        self.asked: set[str] = set()
        #: Confirmed, to be looked up or caught up; messages held meanwhile.
        self.held: dict[str, list[bytes]] = {}
        #: Unsubscribed by us, not confirmed yet.
        self.leaving: set[str] = set()
        #: Kept by the reader per node, so that a link made again after a
        #: failover still says when the node is back.
        self.reconnection = reconnection
        #: The connection's socket, while the reader's selector watches it
        #: (redis-py drops its own reference when the connection fails).
        self.watched: socket.socket | None = None
        #: When the connection last gave something (``time.monotonic()``),
        #: and when the PING still unanswered was sent.
        self.heard = 0.0
        self.pinged: float | None = None


class Reader:
    """The PUB/SUB side of one :class:`RedisBackend`."""

    def __init__(self, backend: RedisBackend) -> None:
        # A thread of its own rather than a subclass of Thread, whose private
        # names (such as _handle, in Python 3.13) vary between versions.
        self._thread = threading.Thread(
            target=self.run, name="sse_response broadcast reader", daemon=True
        )
        self.backend = backend
        self.hub = backend.hub
        self.topology = backend.topology
        self.subscribe_command = "SSUBSCRIBE" if self.topology.sharded else "SUBSCRIBE"
        self.unsubscribe_command = (
            "SUNSUBSCRIBE" if self.topology.sharded else "UNSUBSCRIBE"
        )
        self.health_interval = backend.health_interval
        self.health_timeout = max(self.topology.socket_timeout, self.health_interval)
        self._links: dict[Node, _Link] = {}
        self._link_of: dict[str, _Link] = {}
        self._reconnections: dict[Node, Reconnection] = {}
        #: Channels that need a node (a failed one, a moved slot).
        self._orphans: set[str] = set()
        #: The topology's generation that the channels were last checked
        #: against, and when the nodes are to be found again regardless.
        self._generation = self.topology.generation
        self._next_lookup = 0.0
        self._waker, self._woken = socket.socketpair()
        self._waker.setblocking(False)
        self._woken.setblocking(False)
        # One selector for the thread's life, each link's socket registered
        # while it is connected: select.select() fails on a descriptor of
        # 1024 or more (a process with thousands of open streams), which
        # stopped delivery for good.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._woken, selectors.EVENT_READ, None)
        self._stopping = False

    # From other threads.

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._waker.send(b"!")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        if self._thread.is_alive():
            self._thread.join(2)

    # The thread.

    def run(self) -> None:
        try:
            while not self._stopping:
                try:
                    self._step()
                except Exception:
                    logger.exception("The broadcast reader failed; it goes on.")
                    time.sleep(0.5)
        finally:
            for link in self._links.values():
                self._disconnect(link)
            self._selector.close()
            self._waker.close()
            self._woken.close()

    def _step(self) -> None:
        self._follow_hub()
        # A node that serves nothing now (a master that became a replica)
        # would keep an idle PUB/SUB connection of every process for good,
        # and the command connection that the reader's last reads there
        # opened again after the topology had closed it (the lookup that
        # got MOVED).
        serving = self.topology.nodes()
        for node, link in list(self._links.items()):
            if not link.channels and node not in serving:
                self._disconnect(link)
                del self._links[node]
                node.close()
        now = time.monotonic()
        for link in list(self._links.values()):
            if link.connection is None and link.channels and link.reconnection.due(now):
                self._connect(link)
        timeout = IDLE_WAIT
        waiting = [
            link.reconnection.retry_at - now
            for link in self._links.values()
            if link.connection is None and link.channels
        ]
        waiting.append(self._check_health(now) - now)
        if self._orphans or self.topology.stale:
            waiting.append(FIRST_PAUSE)
        if waiting:
            timeout = max(min(min(waiting), IDLE_WAIT), 0.0)
        # A link's reads leave nothing buffered (see _read): the sockets say
        # when there is more.
        ready: list[_Link] = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(OSError):
                    while self._woken.recv(4096):
                        pass
            else:
                ready.append(key.data)
        for link in ready:
            self._read(link)
        for link in list(self._links.values()):
            if link.held:
                self._sync(link)

    def _check_health(self, now: float) -> float:
        """
        PING the links that were silent for a health interval, and drop
        those whose PING went unanswered for too long; return when the next
        check is due.
        """
        due = now + IDLE_WAIT
        for link in list(self._links.values()):
            connection = link.connection
            if connection is None:
                continue
            if link.pinged is not None:
                if now - link.pinged >= self.health_timeout:
                    try:
                        # The reply may be there, unread while the reader
                        # was busy (a long catch-up): then it is alive.
                        alive = connection.can_read(timeout=0)
                    except CONNECTION_ERRORS:
                        alive = False
                    if not alive:
                        self._lost(
                            link,
                            TimeoutError(
                                f"nothing came in {self.health_timeout:g} s "
                                "after a PING"
                            ),
                        )
                    continue
                due = min(due, link.pinged + self.health_timeout)
            elif now - link.heard >= self.health_interval:
                link.pinged = now
                try:
                    # Subscribed, a RESP2 connection answers [b"pong", b""];
                    # SSUBSCRIBE connections take PING too.
                    connection.send_packed_command(connection.pack_command("PING"))
                except CONNECTION_ERRORS as error:
                    self._lost(link, error)
                    continue
                due = min(due, now + self.health_timeout)
            else:
                due = min(due, link.heard + self.health_interval)
        return due

    # Channels.

    def _follow_hub(self) -> None:
        added, dropped = self.hub.take_changes()
        for channel in dropped:
            link = self._link_of.pop(channel, None)
            self._orphans.discard(channel)
            if link is not None:
                self._leave(link, [channel])
        needed = self.topology.stale or bool(self._orphans)
        now = time.monotonic()
        # Every health interval regardless: a failover or a resharding may
        # leave every connection of this process up and no error anywhere
        # (after SENTINEL FAILOVER the old master stays a master, unaware,
        # for 10 s or more), while the publishers moved on.
        due = self.topology.moves and now >= self._next_lookup
        if needed or due:
            if due:
                self._next_lookup = now + self.health_interval
            try:
                self.topology.refresh_now()
            except (*CONNECTION_ERRORS, redis.RedisError) as error:
                logger.debug("The Redis nodes cannot be found yet: %s", error)
                if needed:
                    added = [*added, *self._orphans]
                    self._orphans.clear()
                    self._orphans.update(added)
                    return
        self._follow_moves()
        self._place([*self._orphans, *added])

    def _follow_moves(self) -> None:
        """
        After the nodes were found to have changed, move every channel
        placed on a node that no longer serves it: unsubscribed there, to be
        subscribed on its node and caught up from its position.
        """
        generation = self.topology.generation
        if generation == self._generation:
            return
        # Read before the lookups below: a change found meanwhile (by a
        # publishing thread) makes the next step check again.
        self._generation = generation
        moving: dict[_Link, list[str]] = {}
        for channel, link in self._link_of.items():
            try:
                node = self.topology.node_for(channel)
            except (*CONNECTION_ERRORS, redis.RedisError):
                continue  # Checked again with the next change.
            if node is not link.node:
                moving.setdefault(link, []).append(channel)
        for link, channels in moving.items():
            logger.debug("%d channels move from %r.", len(channels), link.node)
            self._leave(link, channels)
            for channel in channels:
                self._link_of.pop(channel, None)
                self._orphans.add(channel)

    def _place(self, channels: list[str]) -> None:
        self._orphans.clear()
        by_link: dict[_Link, list[str]] = {}
        for channel in channels:
            placed_on = self._link_of.get(channel)
            if placed_on is not None:
                # Still subscribed there: it lost its last stream and got a
                # new one before the reader unsubscribed (a page reloaded).
                # The hub forgot its position: look it up again.
                if placed_on.connection is not None and channel not in placed_on.asked:
                    placed_on.held.setdefault(channel, [])
                continue
            try:
                node = self.topology.node_for(channel)
            except (*CONNECTION_ERRORS, redis.RedisError):
                self._orphans.add(channel)
                continue
            link = self._links.get(node)
            if link is None:
                reconnection = self._reconnections.get(node)
                if reconnection is None:
                    reconnection = self._reconnections[node] = Reconnection(
                        f"Redis at {node!r}", "redis"
                    )
                link = self._links[node] = _Link(node, reconnection)
            self._link_of[channel] = link
            by_link.setdefault(link, []).append(channel)
        for link, placed in by_link.items():
            link.channels.update(placed)
            # A channel unsubscribed and asked for again stays in leaving:
            # the server confirms the one, then the other.
            if link.connection is not None:
                self._ask(link, placed)

    def _ask(self, link: _Link, channels: list[str]) -> None:
        connection = link.connection
        assert connection is not None
        link.asked.update(channels)
        try:
            connection.send_packed_command(
                connection.pack_commands(
                    [
                        (self.subscribe_command, self.backend.pubsub_channel(channel))
                        for channel in channels
                    ]
                )
            )
        except CONNECTION_ERRORS as error:
            self._lost(link, error)

    def _leave(self, link: _Link, channels: list[str]) -> None:
        link.channels.difference_update(channels)
        link.asked.difference_update(channels)
        for channel in channels:
            link.held.pop(channel, None)
        connection = link.connection
        if connection is None:
            return
        link.leaving.update(channels)
        try:
            connection.send_packed_command(
                connection.pack_commands(
                    [
                        (
                            self.unsubscribe_command,
                            self.backend.pubsub_channel(channel),
                        )
                        for channel in channels
                    ]
                )
            )
        except CONNECTION_ERRORS as error:
            self._lost(link, error)

    # Connections.

    def _connect(self, link: _Link) -> None:
        connection = link.node.connect(f"{self.backend.client_name}-sub")
        try:
            connection.connect()
        except CONNECTION_ERRORS as error:
            connection.disconnect()
            self._lost(link, error)
            return
        link.connection = connection
        link.heard, link.pinged = time.monotonic(), None
        link.watched = sock = connection._sock
        assert sock is not None
        self._selector.register(sock, selectors.EVENT_READ, link)
        link.reconnection.back()
        self._ask(link, sorted(link.channels))

    def _disconnect(self, link: _Link) -> None:
        if link.watched is not None:
            # Before the socket is closed, so that its descriptor, reused
            # by the next connection, is not still registered.
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(link.watched)
            link.watched = None
        if link.connection is not None:
            link.connection.disconnect()
            link.connection = None

    def _lost(self, link: _Link, error: BaseException) -> None:
        self._disconnect(link)
        link.reconnection.lost("PUB/SUB", error)
        link.asked.clear()
        link.held.clear()
        link.leaving.clear()
        self.topology.stale = True
        if self.topology.moves:
            # Another node may serve its channels now: place them again.
            for channel in link.channels:
                self._link_of.pop(channel, None)
                self._orphans.add(channel)
            link.channels.clear()
            self._links.pop(link.node, None)

    def _read(self, link: _Link) -> None:
        connection = link.connection
        if connection is None:
            return
        try:
            while True:
                try:
                    reply = connection.read_response()
                except redis.ResponseError as error:
                    self._refused(link, error)
                else:
                    self._on_reply(link, reply)
                if link.connection is not connection:
                    # Lost meanwhile (a catch-up failed): can_read() would
                    # connect it again, unseen.
                    return
                # Until every reply already received is handled, parsed or
                # not: the caller then waits on the socket alone.
                if not connection.can_read(timeout=0):
                    break
        except CONNECTION_ERRORS as error:
            self._lost(link, error)
            return
        link.heard, link.pinged = time.monotonic(), None

    def _move(self, link: _Link, channels: list[str]) -> None:
        """Unsubscribe ``channels`` from ``link``, to be placed again."""
        self._leave(link, channels)
        for channel in channels:
            self._link_of.pop(channel, None)
            self._orphans.add(channel)
        self.topology.stale = True

    def _refused(self, link: _Link, error: redis.ResponseError) -> None:
        # A node that no longer serves a slot answers SSUBSCRIBE with MOVED;
        # the reply does not say which channel, so every channel still
        # waiting for its confirmation is placed again.
        if moved(error) is None:
            logger.warning("Redis at %r refused a subscription: %s", link.node, error)
        self.topology.stale = True
        for channel in list(link.asked):
            link.asked.discard(channel)
            link.channels.discard(channel)
            self._link_of.pop(channel, None)
            self._orphans.add(channel)

    def _on_reply(self, link: _Link, reply: Any) -> None:
        if not isinstance(reply, list):
            return  # b"PONG": a PING on a connection with no subscription
        kind = reply[0]
        if kind in _MESSAGES:
            channel = self.backend.channel_of(reply[1])
            held = link.held.get(channel)
            if held is not None or channel in link.asked:
                link.held.setdefault(channel, []).append(reply[2])
            elif channel in link.channels:
                self._deliver(link, channel, reply[2])
        elif kind in _SUBSCRIBED:
            channel = self.backend.channel_of(reply[1])
            if channel in link.asked:
                link.asked.discard(channel)
                link.held.setdefault(channel, [])
        elif kind in _UNSUBSCRIBED:
            channel = self.backend.channel_of(reply[1])
            if channel in link.leaving:
                link.leaving.discard(channel)
            elif channel in link.channels:
                # The server dropped it: its slot moved to another node.
                link.channels.discard(channel)
                link.held.pop(channel, None)
                self._link_of.pop(channel, None)
                self._orphans.add(channel)
                self.topology.stale = True

    # Handing events to the hub.

    def _sync(self, link: _Link) -> None:
        """Look up or catch up the confirmed channels, then hand what was held."""
        held, link.held = link.held, {}
        new = [channel for channel in held if self.hub.state(channel) is None]
        try:
            if new:
                for channel, (last, lineage) in self.backend.where(
                    new, link.node
                ).items():
                    self.hub.set_position(channel, last, lineage)
            self._catch_up(link, [channel for channel in held if channel not in new])
        except CONNECTION_ERRORS as error:
            # Looked up again once the node is back.
            self._lost(link, error)
            return
        except NodeMoved:
            # Subscribed on a node that does not serve them (a replica that
            # was the master): subscribed again where the nodes, found
            # again, say; the catch-up there starts from the same positions.
            self._move(link, list(held))
            return
        except redis.RedisError as error:
            logger.warning("Redis at %r refused a lookup: %s", link.node, error)
            self.topology.stale = True
            for channel in held:
                link.channels.discard(channel)
                self._link_of.pop(channel, None)
                self._orphans.add(channel)
            return
        for channel, messages in held.items():
            for data in messages:
                self._deliver(link, channel, data)

    def _catch_up(
        self, link: _Link, channels: Iterable[str], until: int | None = None
    ) -> None:
        """
        Hand on what history holds of ``channels`` past their positions (up
        to ``until``): CATCH_UP_BATCH channels per round trip, those with
        more read again in a later one.
        """
        rounds = dict.fromkeys(channels, 0)
        queue = deque(rounds)
        while queue:
            batch: list[tuple[str, int, Lineage]] = []
            while queue and len(batch) < CATCH_UP_BATCH:
                channel = queue.popleft()
                state = self.hub.state(channel)
                if state is not None:
                    batch.append((channel, *state))
            if not batch:
                continue
            limit = max(READ_LIMIT // len(batch), CATCH_UP_COUNT)
            pages = self.backend.histories(
                [(channel, position) for channel, position, _ in batch],
                limit,
                node=link.node,
                until=until,
            )
            for (channel, position, lineage), (found, _, stored) in zip(
                batch, pages, strict=True
            ):
                more = self._hand_on(channel, position, lineage, found, stored)
                rounds[channel] += 1
                if (more or len(found) >= limit) and rounds[channel] < CATCH_UP_ROUNDS:
                    queue.append(channel)

    def _hand_on(
        self,
        channel: str,
        position: int,
        lineage: Lineage,
        found: list[Entry],
        stored: Lineage,
    ) -> bool:
        """
        Hand on what a catch-up read of ``channel`` from ``position`` (in
        ``lineage``) found; return whether it must be read again from where
        it stands now (a new lineage moved it).
        """
        if stored != lineage:
            self.hub.relineage(channel, stored)
            if self.hub.state(channel) != (position, stored):
                return True  # It starts again from another position.
        if found and found[0][0] > position + 1:
            # Trimmed before this process read it.
            self.hub.gap(channel, found[0][0] - 1)
        self.hub.deliver(channel, found, stored)
        return False

    def _deliver(self, link: _Link, channel: str, data: bytes) -> None:
        seq, lineage, payload, published = parse_message(data)
        state = self.hub.state(channel)
        if state is None:
            return
        position, current = state
        if lineage != current:
            self.hub.relineage(channel, lineage)
            state = self.hub.state(channel)
            if state is None:
                return
            position = state[0]
        if seq > position + 1:
            # A message was missed (it was published while the channel was
            # being subscribed): history has it.
            try:
                self._catch_up(link, [channel], seq - 1)
            except CONNECTION_ERRORS as error:
                self._lost(link, error)
                return
            except NodeMoved:
                # As in _sync: this message comes again from history there.
                self._move(link, [channel])
                return
            except redis.RedisError as error:
                logger.warning("Redis at %r refused a read: %s", link.node, error)
        self.hub.deliver(channel, ((seq, payload),), lineage, published)
