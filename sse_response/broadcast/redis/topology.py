"""
Where the channels of a RedisBackend live: one Redis, the master that a set
of Sentinels names, or the masters of a Redis Cluster.

A :class:`Node` is one Redis server with one command connection, shared by
every thread of the process one command (or pipeline) at a time; a
topology maps each channel to the node that serves it, and finds the nodes
again when a server fails or a cluster reshards. The backend and the reader
know nothing more of the topology than this.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis
from redis.connection import parse_url
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

__all__ = [
    "ClusterTopology",
    "Node",
    "NodeMoved",
    "SentinelTopology",
    "Standalone",
    "Topology",
    "make_topology",
]

logger = logging.getLogger("sse_response.broadcast")

#: Errors of a connection: the command may or may not have run.
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

Command = tuple[Any, ...]

#: The least time between two lookups of the nodes.
REFRESH_INTERVAL = 0.1

#: How long a server that failed to answer a lookup is asked last.
FAILED_FOR = 60.0

#: TCP keepalive of every connection: probes after 15 s of silence, every
#: 5 s, 3 unanswered ones and the connection is dead. The OS default (2 h
#: before the first probe) leaves a connection that a NAT or a load
#: balancer dropped, or to a host that vanished without a reset, looking
#: alive for hours; probes every 15 s also keep such middleboxes (idle
#: timeouts of a minute and more) from dropping it. The reader's PINGs
#: find a silent PUB/SUB connection sooner; these also cover the command
#: connections between two commands.
KEEPALIVE = {
    option: value
    for name, value in (
        # macOS names the first TCP_KEEPALIVE.
        ("TCP_KEEPIDLE" if hasattr(socket, "TCP_KEEPIDLE") else "TCP_KEEPALIVE", 15),
        ("TCP_KEEPINTVL", 5),
        ("TCP_KEEPCNT", 3),
    )
    if (option := getattr(socket, name, None)) is not None
}


class NodeMoved(Exception):
    """A channel is served by another node now (``MOVED``, ``ASK``)."""

    def __init__(self, address: tuple[str, int], *, asking: bool) -> None:
        super().__init__(f"{address[0]}:{address[1]}")
        self.address = address
        self.asking = asking


def moved(error: redis.ResponseError) -> NodeMoved | None:
    """The redirection an error reply of a cluster node says, if it is one."""
    # redis-py's parser turns "-MOVED 3999 host:port" and "-ASK ..." into
    # MovedError and AskError (MovedError subclasses AskError) whose message
    # has lost its first word, so the words below never matched them and a
    # redirection was taken for an error: a process that only publishes kept
    # sending to the old master after a failover. The address is on the error.
    if isinstance(error, redis.exceptions.AskError):
        address = error.node_addr
        return NodeMoved(
            (str(address[0]), int(address[1])),
            asking=not isinstance(error, redis.exceptions.MovedError),
        )
    words = str(error).split()
    if len(words) == 3 and words[0] in ("MOVED", "ASK"):
        host, _, port = words[2].rpartition(":")
        return NodeMoved((host, int(port)), asking=words[0] == "ASK")
    return None


class Node:
    """
    One Redis server, and this process's command connection to it.

    ``identity`` is the server's ``run_id``, read whenever the connection
    is made: it changes when the server restarts, and differs between a
    master and the replica that takes over from it.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        name: str,
        socket_timeout: float,
    ) -> None:
        self.params = dict(params)
        self.name = name
        self.socket_timeout = socket_timeout
        self.lock = threading.Lock()
        self.identity = ""
        self._connection = self.connect(f"{name}-cmd", identify=True)

    @property
    def address(self) -> tuple[str, int]:
        return (str(self.params.get("host", "")), int(self.params.get("port", 0)))

    def __repr__(self) -> str:
        host, port = self.address
        return f"<Node {host}:{port}>" if port else f"<Node {self.params.get('path')}>"

    def connect(
        self, client_name: str, *, identify: bool = False, timeout: float | None = None
    ) -> redis.Connection:
        """A new connection (not connected yet) to this server."""
        params = dict(self.params)
        connection_class = params.pop("connection_class", redis.Connection)
        if issubclass(connection_class, redis.Connection):
            # TCP (and TLS) only: a unix socket has no keepalive, and
            # redis-py's class for one takes no such argument.
            params.update(socket_keepalive=True, socket_keepalive_options=KEEPALIVE)
        connection: redis.Connection = connection_class(
            **params,
            client_name=client_name,
            socket_timeout=timeout or self.socket_timeout,
            socket_connect_timeout=min(self.socket_timeout, 2.0),
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            redis_connect_func=self._identify if identify else None,
            # RESP2, whatever redis-py's default: PUB/SUB messages come back
            # as replies, and replies have one shape on every version.
            protocol=2,
        )
        return connection

    def _identify(self, connection: redis.Connection) -> None:
        connection.on_connect()
        connection.send_command("INFO", "server")
        info = connection.read_response()
        text = info.decode() if isinstance(info, bytes) else str(info)
        for line in text.splitlines():
            if line.startswith("run_id:"):
                self.identity = line.partition(":")[2].strip()

    def execute(
        self,
        commands: Callable[[str], Sequence[Command]],
        *,
        asking: bool = False,
    ) -> list[Any]:
        """
        Send the commands that ``commands`` makes (given the server's
        identity) in one round trip; return their replies, an error reply
        as a :class:`redis.ResponseError` in its place. A lost connection
        raises, and the next call connects again.
        """
        with self.lock:
            connection = self._connection
            try:
                self._ensure_connected(connection)
                batch = list(commands(self.identity))
                if asking:
                    # ASKING lets the next command alone in (it is one-shot):
                    # one before each, or the second of a batch (the HMGET
                    # after an XRANGE, the EVALSHA after a SCRIPT LOAD) is
                    # sent back with MOVED while its slot migrates.
                    batch = [c for command in batch for c in (("ASKING",), command)]
                connection.send_packed_command(connection.pack_commands(batch))
                replies: list[Any] = []
                for _ in batch:
                    try:
                        replies.append(connection.read_response())
                    except redis.ResponseError as error:
                        replies.append(error)
            except CONNECTION_ERRORS:
                connection.disconnect()
                raise
            return replies[1::2] if asking else replies

    @staticmethod
    def _ensure_connected(connection: redis.Connection) -> None:
        # A connection the server closed (a restart) is replaced before a
        # command is sent on it, so the first command after a restart works,
        # and no command is sent twice.
        connection.connect()
        try:
            stale = connection.can_read()
        except CONNECTION_ERRORS:
            stale = True
        if stale:
            connection.disconnect()
            connection.connect()

    def close(self) -> None:
        with self.lock:
            self._connection.disconnect()


class Topology:
    """Which node serves each channel; subclasses find the nodes."""

    #: Whether PUB/SUB is sharded (``SPUBLISH``, ``SSUBSCRIBE``).
    sharded = False
    #: Whether a channel may move to another node (a failover, resharding).
    moves = True

    def __init__(
        self, urls: Sequence[str], *, name: str, socket_timeout: float
    ) -> None:
        self.urls = list(urls)
        self.name = name
        self.socket_timeout = socket_timeout
        self.lock = threading.Lock()
        #: Set when a node failed: the next use finds the nodes again.
        self.stale = False
        #: Counts the lookups that found other nodes, or slots served by
        #: other nodes, than the lookup before: whoever placed something on
        #: a node knows when to check again where it belongs.
        self.generation = 0
        self._refreshed = 0.0
        #: When each server asked in a lookup last failed to answer.
        self._failed: dict[tuple[str, int], float] = {}

    def describe(self) -> str:
        return ", ".join(self.urls)

    def node_for(self, tag: str) -> Node:
        """The node that serves the channel whose hash tag is ``tag``."""
        if self.stale:
            self.refresh_now()
        return self._node_for(tag)

    def _node_for(self, tag: str) -> Node:
        raise NotImplementedError

    def refresh_now(self) -> None:
        """:meth:`refresh`, at most every 0.1 s; an error leaves it stale."""
        with self.lock:
            now = time.monotonic()
            if now - self._refreshed < REFRESH_INTERVAL:
                return
            self._refreshed = now
        self.refresh()
        self.stale = False

    def nodes(self) -> list[Node]:
        """The nodes that serve channels now."""
        raise NotImplementedError

    def _to_ask(self, addresses: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        """
        ``addresses`` in the order to ask them in a lookup: as given, those
        that failed in the last minute last (the least recent first). A
        server gone without a word (packets dropped) takes the connect
        timeout to fail: asked first each time, it held every lookup up.
        """
        now = time.monotonic()

        def failed_at(address: tuple[str, int]) -> float:
            at = self._failed.get(address, 0.0)
            return at if now - at < FAILED_FOR else 0.0

        return sorted(dict.fromkeys(addresses), key=failed_at)

    def _answered(self, address: tuple[str, int], ok: bool) -> None:
        if ok:
            self._failed.pop(address, None)
        else:
            self._failed[address] = time.monotonic()

    def refresh(self) -> None:
        """Find the nodes again (a server failed, or a node said MOVED)."""

    def node_at(self, address: tuple[str, int]) -> Node:
        """The node at ``address`` (a redirection named it)."""
        raise NotImplementedError

    def close(self) -> None:
        for node in self.nodes():
            node.close()

    def _node(self, params: Mapping[str, Any]) -> Node:
        return Node(params, name=self.name, socket_timeout=self.socket_timeout)


class Standalone(Topology):
    """One Redis server serves every channel."""

    moves = False

    def __init__(
        self, urls: Sequence[str], *, name: str, socket_timeout: float
    ) -> None:
        super().__init__(urls, name=name, socket_timeout=socket_timeout)
        self.node = self._node(parse_url(urls[0]))

    def _node_for(self, tag: str) -> Node:
        return self.node

    def nodes(self) -> list[Node]:
        return [self.node]

    def node_at(self, address: tuple[str, int]) -> Node:
        return self.node


class SentinelTopology(Topology):
    """
    The master that the Sentinels at ``urls`` name ``master_name`` serves
    every channel; after a failover they name another.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        master_name: str,
        name: str,
        socket_timeout: float,
        sentinel_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(urls, name=name, socket_timeout=socket_timeout)
        self.master_name = master_name
        self.sentinels = [parse_url(url) for url in urls]
        self.sentinel_params = dict(sentinel_params or {})
        # The master takes the credentials and database of the first URL.
        self.master_params = {
            key: value
            for key, value in self.sentinels[0].items()
            if key not in ("host", "port", "path")
        }
        self.node: Node | None = None

    def describe(self) -> str:
        return (
            f"the master {self.master_name!r} of the Sentinels at {super().describe()}"
        )

    def _ask_sentinels(self) -> tuple[str, int]:
        failures = []
        addresses = [
            (str(params.get("host", "localhost")), int(params.get("port", 26379)))
            for params in self.sentinels
        ]
        for address in self._to_ask(addresses):
            client = redis.Redis(
                host=address[0],
                port=address[1],
                socket_timeout=min(self.socket_timeout, 2.0),
                socket_connect_timeout=min(self.socket_timeout, 2.0),
                # No retries (as on the nodes' connections): redis-py retries
                # 3 times by default, so one Sentinel that never answers
                # held every publish 16 s with a socket timeout of 1 s,
                # before the next Sentinel was asked.
                **{
                    "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0),
                    **self.sentinel_params,
                },
            )
            try:
                reply = client.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                )
            except redis.RedisError as error:
                self._answered(address, False)
                failures.append(str(error))
                continue
            finally:
                client.close()
            self._answered(address, True)
            if reply:
                host, port = reply
                host = host.decode() if isinstance(host, bytes) else str(host)
                return host, int(port)
            failures.append(f"no master named {self.master_name!r}")
        raise redis.ConnectionError(
            f"No Sentinel names a master {self.master_name!r}: {'; '.join(failures)}"
        )

    def refresh(self) -> None:
        address = self._ask_sentinels()
        with self.lock:
            if self.node is not None and self.node.address == address:
                return
            self.generation += 1
            old, self.node = (
                self.node,
                self._node(
                    {**self.master_params, "host": address[0], "port": address[1]}
                ),
            )
        if old is not None:
            old.close()

    def _node_for(self, tag: str) -> Node:
        node = self.node
        if node is None:
            self.refresh()
            node = self.node
            assert node is not None
        return node

    def nodes(self) -> list[Node]:
        node = self.node
        return [] if node is None else [node]

    def node_at(self, address: tuple[str, int]) -> Node:
        return self._node_for("")


class ClusterTopology(Topology):
    """
    The masters of a Redis Cluster, found from any of the seed ``urls``:
    each channel is served by the master of its hash tag's slot.
    """

    sharded = True

    def __init__(
        self, urls: Sequence[str], *, name: str, socket_timeout: float
    ) -> None:
        super().__init__(urls, name=name, socket_timeout=socket_timeout)
        self.seeds = [parse_url(url) for url in urls]
        self.common = {
            key: value
            for key, value in self.seeds[0].items()
            if key not in ("host", "port", "path", "db")
        }
        self._nodes: dict[tuple[str, int], Node] = {}
        self._slots: list[Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        #: The slot ranges and their masters' addresses, as last found.
        self._layout: list[tuple[int, int, tuple[str, int]]] = []

    def describe(self) -> str:
        return f"the Redis Cluster at {super().describe()}"

    def _node_for(self, tag: str) -> Node:
        node = self._slots[key_slot(tag.encode())]
        if node is None:
            self.refresh()
            node = self._slots[key_slot(tag.encode())]
            if node is None:
                raise redis.ConnectionError(
                    f"No master of {self.describe()} serves the slot of {tag!r}."
                )
        return node

    def nodes(self) -> list[Node]:
        with self.lock:
            return list(self._nodes.values())

    def node_at(self, address: tuple[str, int]) -> Node:
        with self.lock:
            node = self._nodes.get(address)
            if node is None:
                node = self._nodes[address] = self._node(
                    {**self.common, "host": address[0], "port": address[1]}
                )
            return node

    def refresh(self) -> None:
        # Known masters first, then the seeds, in a random order so that
        # processes spread their questions.
        with self.lock:
            known = [node.address for node in self._nodes.values()]
        candidates = random.sample(known, len(known)) + [
            (str(seed.get("host", "localhost")), int(seed.get("port", 6379)))
            for seed in self.seeds
        ]
        failures = []
        for address in self._to_ask(candidates):
            with self.lock:
                node = self._nodes.get(address)
            # A seed that is not a known master: a connection for one question.
            probe = node or self._node(
                {**self.common, "host": address[0], "port": address[1]}
            )
            try:
                (reply,) = probe.execute(lambda _: [("CLUSTER", "SLOTS")])
            except CONNECTION_ERRORS as error:
                self._answered(address, False)
                failures.append(f"{address[0]}:{address[1]}: {error}")
                continue
            finally:
                if node is None:
                    probe.close()
            if isinstance(reply, redis.ResponseError):
                self._answered(address, False)
                failures.append(f"{address[0]}:{address[1]}: {reply}")
                continue
            self._answered(address, True)
            self._apply(reply, address[0])
            return
        raise redis.ConnectionError(
            f"No node of {self.describe()} answers: {'; '.join(failures)}"
        )

    def _apply(self, reply: list[Any], asked_host: str) -> None:
        slots: list[Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        layout = []
        with self.lock:
            masters: dict[tuple[str, int], Node] = {}
            for start, end, master, *_replicas in reply:
                host = master[0].decode() if isinstance(master[0], bytes) else master[0]
                if not host or host == "?":
                    host = asked_host
                address = (str(host), int(master[1]))
                node = masters.get(address) or self._nodes.get(address)
                if node is None:
                    node = self._node(
                        {**self.common, "host": address[0], "port": address[1]}
                    )
                masters[address] = node
                layout.append((int(start), int(end), address))
                for slot in range(int(start), int(end) + 1):
                    slots[slot] = node
            gone = [
                node for address, node in self._nodes.items() if address not in masters
            ]
            self._nodes = masters
            self._slots = slots
            layout.sort()
            if layout != self._layout:
                self._layout = layout
                self.generation += 1
        for node in gone:
            node.close()


def make_topology(
    location: str | Sequence[str], options: Mapping[str, Any], *, name: str
) -> Topology:
    """The topology that ``LOCATION`` and ``OPTIONS`` describe."""
    urls = [location] if isinstance(location, str) else list(location)
    socket_timeout = float(options.get("socket_timeout", 5.0))
    if options.get("cluster"):
        return ClusterTopology(urls, name=name, socket_timeout=socket_timeout)
    master_name = options.get("sentinel")
    if master_name:
        return SentinelTopology(
            urls,
            master_name=str(master_name),
            name=name,
            socket_timeout=socket_timeout,
            sentinel_params=options.get("sentinel_kwargs"),
        )
    return Standalone(urls, name=name, socket_timeout=socket_timeout)
