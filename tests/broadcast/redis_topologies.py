"""
Real local Redis topologies for the tests, made of Debian's redis-server:

* :class:`RedisClusterSet`, a Redis Cluster of three masters with one replica
  each, whose node timeout is short enough that a killed master is replaced
  in a few seconds;
* :class:`RedisSentinelSet`, a master, a replica and three Sentinels
  (``redis-server --sentinel``: Debian's redis-sentinel package is not needed).

Every process listens on a free port of 127.0.0.1, lives in a directory of
its own, keeps no data on disk and is killed by ``stop()`` (both sets are
context managers, and the fixtures ``redis_cluster`` and ``redis_sentinel``
at the end of this module make one per test). Every wait polls the servers
for a condition, with a deadline, and fails with what they last said.

Nothing is skipped when redis-server is missing: starting fails.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import pytest
import redis

from tests.broadcast.redis_server import REDIS_SERVER, RedisServer
from tests.integration.servers import free_ports

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

#: Sharded pub/sub (SSUBSCRIBE) and ``cluster-port`` are Redis 7.0's.
MINIMUM_VERSION = (7, 0)
#: The cluster's node timeout, in milliseconds: a failover takes 1 to 3 s.
NODE_TIMEOUT_MS = 1000
#: How long a whole set may take to be up, formed and in agreement.
START_TIMEOUT = 30.0
#: How long a failover, or a node's rejoining, may take.
FAILOVER_TIMEOUT = 20.0
#: How long the Sentinels may take to make a master that comes back a
#: replica: they notice it from its INFO, which they ask every 10 s.
DEMOTE_TIMEOUT = 40.0
#: Between two polls of the servers.
POLL_INTERVAL = 0.05
#: Redis Cluster's number of hash slots.
SLOTS = 16384
#: The options of every server that has, or may have, replicas: a master
#: starts sending its data to a new replica at once, not 5 s later (the
#: default delay, which waits for more replicas to share one transfer).
REPLICATION_ARGS = ("--repl-diskless-sync-delay", "0")

T = TypeVar("T")
SlotRange = tuple[int, int]


def redis_version() -> tuple[int, int, int]:
    """The version of the redis-server the tests run."""
    output = subprocess.run(
        [REDIS_SERVER, "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", output)
    if match is None:
        raise AssertionError(f"cannot read redis-server's version in {output!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def require_version() -> None:
    version = redis_version()
    if version[:2] < MINIMUM_VERSION:
        raise AssertionError(
            f"redis-server {'.'.join(map(str, version))} is too old for the "
            f"Redis Cluster tests: they need {'.'.join(map(str, MINIMUM_VERSION))}+"
        )


def admin(port: int) -> redis.Redis:
    """A short-lived client of the server on ``port`` (str replies, RESP2)."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=2,
        socket_connect_timeout=2,
        decode_responses=True,
        protocol=2,
    )


def command(port: int, *args: str) -> Any:
    """The reply of one command to the server on ``port``, unparsed."""
    with admin(port) as client:
        return client.execute_command(*args)


def info(port: int, section: str) -> dict[str, Any]:
    with admin(port) as client:
        reply: dict[str, Any] = client.info(section)
        return reply


def poll(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    state: Callable[[], str],
) -> T:
    """
    Call ``check`` until it returns something other than None (a Redis
    error counts as None); after ``timeout`` seconds, fail with ``state()``.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            result = check()
            if result is not None:
                return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}:\n{state()}"
            )
        time.sleep(POLL_INTERVAL)


def clients_of(port: int, prefix: str = "") -> list[dict[str, Any]]:
    """CLIENT LIST of the server on ``port``, this query's connection left out."""
    with admin(port) as client:
        own = client.client_id()
        return [
            entry
            for entry in client.client_list()
            if int(entry["id"]) != own and str(entry.get("name", "")).startswith(prefix)
        ]


# Redis Cluster


@dataclass(eq=False)
class ClusterNode:
    """One node of a :class:`RedisClusterSet`, whatever its role is now."""

    index: int
    server: RedisServer
    bus_port: int
    #: Its node id (kept in its nodes.conf, so across restarts).
    id: str = ""

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def alive(self) -> bool:
        return self.server.alive

    def client(self) -> redis.Redis:
        """A plain (not cluster) client of this node alone."""
        return self.server.client()

    def __repr__(self) -> str:
        return f"<ClusterNode {self.index} :{self.port} {self.id[:8]}>"


@dataclass(frozen=True)
class NodeRole:
    """What a node is, as the cluster agreed when it was asked."""

    node: ClusterNode
    role: Literal["master", "replica"]
    #: The hash slots it serves, or a replica's master serves.
    slots: tuple[SlotRange, ...]
    #: A replica's master's node id.
    master_id: str | None = None

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def port(self) -> int:
        return self.node.port

    @property
    def url(self) -> str:
        return self.node.url

    def serves(self, slot: int) -> bool:
        return any(start <= slot <= end for start, end in self.slots)


@dataclass(frozen=True)
class NodeLine:
    """One line of a CLUSTER NODES reply."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[SlotRange, ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_cluster_nodes(text: str) -> list[NodeLine]:
    lines = []
    for row in text.splitlines():
        fields = row.split()
        if len(fields) < 8:
            continue
        address = fields[1].split(",", 1)[0].split("@", 1)[0]
        slots: list[SlotRange] = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being imported or migrated
                continue
            start, _, end = item.partition("-")
            slots.append((int(start), int(end or start)))
        lines.append(
            NodeLine(
                id=fields[0],
                port=int(address.rsplit(":", 1)[1] or 0),
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(sorted(slots)),
            )
        )
    return lines


def slot_map(lines: Sequence[NodeLine]) -> tuple[tuple[int, int, str], ...]:
    """Which master (not failed) serves which slots, in one node's view."""
    return tuple(
        sorted(
            (start, end, line.id)
            for line in lines
            if line.is_master and "fail" not in line.flags
            for start, end in line.slots
        )
    )


def covers_all(mapping: tuple[tuple[int, int, str], ...]) -> bool:
    expected = 0
    for start, end, _ in mapping:
        if start != expected:
            return False
        expected = end + 1
    return expected == SLOTS


class RedisClusterSet:
    """
    A Redis Cluster of ``masters`` masters with ``replicas`` replicas each
    (three and one by default), every node a redis-server of its own under
    ``directory``. Use it as a context manager, or call :meth:`start` and
    :meth:`stop`.
    """

    def __init__(self, directory: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.directory = directory
        self.replicas_per_master = replicas
        count = masters * (replicas + 1)
        # The cluster bus on a port of its own (cluster-port): the default,
        # the port + 10000, may be taken, or above 65535.
        ports = free_ports(2 * count)
        self.nodes = [
            ClusterNode(
                index,
                RedisServer(
                    directory / f"node-{index}",
                    port=ports[2 * index],
                    args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(NODE_TIMEOUT_MS),
                        "--cluster-port",
                        str(ports[2 * index + 1]),
                        *REPLICATION_ARGS,
                    ],
                ),
                ports[2 * index + 1],
            )
            for index in range(count)
        ]
        self.expected_masters = masters
        #: The slots each master killed served then, by node id.
        self._slots_when_killed: dict[str, tuple[SlotRange, ...]] = {}
        #: How long start() took, in seconds (creating the cluster included).
        self.start_seconds = 0.0

    # Life cycle

    def __enter__(self) -> RedisClusterSet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every node, create the cluster, wait until all agree it is ok."""
        began = time.monotonic()
        try:
            require_version()
            for node in self.nodes:
                node.server.start()
                node.id = str(command(node.port, "CLUSTER", "MYID"))
            self._create()
            self._wait_healthy(START_TIMEOUT, "the new cluster to be ok")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def _create(self) -> None:
        result = subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas_per_master),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        (self.directory / "cluster-create.log").write_text(
            result.stdout + result.stderr
        )
        if result.returncode != 0:
            raise AssertionError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def stop(self) -> None:
        """Kill every node (SIGKILL); again is harmless."""
        errors = []
        for node in self.nodes:
            try:
                node.server.kill()
            except Exception as error:  # kill the others all the same
                errors.append(error)
        if errors:
            raise errors[0]

    # What the cluster is now

    @property
    def seed_url(self) -> str:
        """redis://127.0.0.1:PORT/0 of a master alive now."""
        return self.masters()[0].url

    @property
    def seed_urls(self) -> list[str]:
        """The URL of every node of the set, dead or alive, in node order."""
        return [node.url for node in self.nodes]

    def alive(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.alive]

    def node(self, node_id: str) -> ClusterNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def view(self, node: ClusterNode) -> list[NodeLine]:
        """CLUSTER NODES, as ``node`` sees the cluster."""
        return parse_cluster_nodes(str(command(node.port, "CLUSTER", "NODES")))

    def roles(self) -> list[NodeRole]:
        """Every node alive, as the first node alive sees it."""
        alive = self.alive()
        if not alive:
            raise AssertionError("no node of the cluster is alive")
        lines = self.view(alive[0])
        by_id = {line.id: line for line in lines}
        roles = []
        ids = {node.id: node for node in self.nodes}
        for line in lines:
            node = ids.get(line.id)
            if node is None or not node.alive or line.failing:
                continue
            if line.is_master:
                if line.slots:
                    roles.append(NodeRole(node, "master", line.slots))
            elif line.master_id in by_id:
                master_slots = by_id[line.master_id].slots
                roles.append(NodeRole(node, "replica", master_slots, line.master_id))
        return sorted(roles, key=lambda role: (role.slots, role.role, role.port))

    def masters(self) -> list[NodeRole]:
        """The masters alive that serve slots, by their first slot."""
        return [role for role in self.roles() if role.role == "master"]

    def replicas(self) -> list[NodeRole]:
        """The replicas alive, by their master's first slot."""
        return [role for role in self.roles() if role.role == "replica"]

    def keyslot(self, key: str | bytes) -> int:
        """The hash slot of ``key``, as the cluster computes it."""
        port = self.alive()[0].port
        with admin(port) as client:
            return int(client.execute_command("CLUSTER", "KEYSLOT", key))

    def master_for(self, key: str | bytes) -> NodeRole:
        """The master that serves ``key``'s slot now."""
        slot = self.keyslot(key)
        for role in self.masters():
            if role.serves(slot):
                return role
        raise AssertionError(f"no master serves slot {slot}:\n{self.describe()}")

    def client_list(
        self, node: ClusterNode | NodeRole, prefix: str = ""
    ) -> list[dict[str, Any]]:
        """
        The CLIENT LIST entries of ``node`` whose name starts with ``prefix``
        (all by default), the connection asking left out.
        """
        return clients_of(_node(node).port, prefix)

    def describe(self) -> str:
        """What every node alive says, for the message of a failure."""
        parts = []
        for node in self.nodes:
            if not node.alive:
                parts.append(f"{node!r}: dead")
                continue
            try:
                state = info_field(
                    str(command(node.port, "CLUSTER", "INFO")), "cluster_state"
                )
                nodes = str(command(node.port, "CLUSTER", "NODES"))
            except redis.RedisError as error:
                parts.append(f"{node!r}: {error!r}")
                continue
            parts.append(f"{node!r}: cluster_state:{state}\n{nodes.rstrip()}")
        return "\n".join(parts)

    # Failures

    def kill(self, node: ClusterNode | NodeRole) -> None:
        """Kill ``node`` at once (SIGKILL)."""
        handle = _node(node)
        if not handle.alive:
            return
        for role in self.masters():
            if role.node is handle:
                self._slots_when_killed[handle.id] = role.slots
        handle.server.kill()

    def wait_failover(
        self, old_master: ClusterNode | NodeRole, timeout: float = FAILOVER_TIMEOUT
    ) -> NodeRole:
        """
        Wait until a replica of the killed ``old_master`` serves its slots,
        says it is a master, and every node alive agrees and is ok; return it.
        """
        old = _node(old_master)
        slots = self._slots_when_killed.get(old.id)
        if not slots:
            raise AssertionError(f"{old!r} was not a master serving slots when killed")

        def promoted() -> NodeRole | None:
            if self._healthy() is None:
                return None
            owners = {
                role.node
                for role in self.masters()
                if any(role.serves(start) for start, _ in slots)
            }
            if len(owners) != 1:
                return None
            (owner,) = owners
            if owner is old or _role_of(owner.port) != "master":
                return None
            return next(role for role in self.masters() if role.node is owner)

        return poll(
            promoted,
            timeout,
            f"a replica of {old!r} to take its slots {slots}",
            self.describe,
        )

    def restart(
        self, node: ClusterNode | NodeRole, timeout: float = FAILOVER_TIMEOUT
    ) -> NodeRole:
        """
        Start a killed node again (empty, with its nodes.conf), and wait until
        every node agrees it is back (a replica, if it was replaced) and ok.
        """
        handle = _node(node)
        if handle.alive:
            raise AssertionError(f"{handle!r} is alive")
        handle.server.start()

        def rejoined() -> NodeRole | None:
            if self._healthy() is None:
                return None
            return next((role for role in self.roles() if role.node is handle), None)

        role = poll(rejoined, timeout, f"{handle!r} to rejoin", self.describe)
        self._slots_when_killed.pop(handle.id, None)
        return role

    # The conditions waited for

    def _agreed(self) -> list[NodeLine] | None:
        """
        The view of the first node alive, if every node alive says
        cluster_state:ok and sees the same masters serving all the slots,
        and no node alive as failing or in a role other than its own.
        """
        alive = self.alive()
        views = []
        for node in alive:
            state = info_field(
                str(command(node.port, "CLUSTER", "INFO")), "cluster_state"
            )
            if state != "ok":
                return None
            views.append(self.view(node))
        mappings = {slot_map(lines) for lines in views}
        if len(mappings) != 1 or not covers_all(next(iter(mappings))):
            return None
        alive_ids = {node.id for node in alive}
        roles = set()
        for lines in views:
            seen = {line.id: line for line in lines if line.id in alive_ids}
            if len(seen) != len(alive_ids) or any(
                line.failing for line in seen.values()
            ):
                return None
            roles.add(
                frozenset(
                    (line.id, line.is_master, line.master_id) for line in seen.values()
                )
            )
        if len(roles) != 1:
            return None
        return views[0]

    def _healthy(self) -> list[NodeLine] | None:
        """:meth:`_agreed`, and every replica alive in sync with its master."""
        lines = self._agreed()
        if lines is None:
            return None
        masters = [line for line in lines if line.is_master and line.slots]
        if len(masters) != self.expected_masters:
            return None
        for node in self.alive():
            replication = info(node.port, "replication")
            if replication.get("role") == "slave" and (
                replication.get("master_link_status") != "up"
                or replication.get("master_sync_in_progress")
            ):
                return None
        return lines

    def _wait_healthy(self, timeout: float, what: str) -> list[NodeLine]:
        return poll(self._healthy, timeout, what, self.describe)


def _without_replicaof(args: Sequence[str]) -> list[str]:
    """Command-line options, less a ``--replicaof HOST PORT``."""
    kept = list(args)
    if "--replicaof" in kept:
        at = kept.index("--replicaof")
        del kept[at : at + 3]
    return kept


def _node(node: ClusterNode | NodeRole) -> ClusterNode:
    return node.node if isinstance(node, NodeRole) else node


def _role_of(port: int) -> str:
    reply = command(port, "ROLE")
    return str(reply[0])


def info_field(text: str, name: str) -> str | None:
    """A field of a raw INFO-like reply (CLUSTER INFO)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


# Redis Sentinel


class RedisSentinelSet:
    """
    A master, ``replicas`` replicas of it and ``sentinels`` Sentinels
    monitoring it as ``master_name`` with a quorum of 2, every process a
    redis-server of its own under ``directory``. Use it as a context manager,
    or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        master_name: str = "mymaster",
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int = 2,
    ) -> None:
        self.directory = directory
        self.master_name = master_name
        ports = free_ports(1 + replicas + sentinels)
        master_port = ports[0]
        self.servers = [
            RedisServer(directory / "redis-0", port=master_port, args=REPLICATION_ARGS)
        ] + [
            RedisServer(
                directory / f"redis-{index}",
                port=ports[index],
                args=[*REPLICATION_ARGS, "--replicaof", "127.0.0.1", str(master_port)],
            )
            for index in range(1, 1 + replicas)
        ]
        config = (
            f"sentinel monitor {master_name} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {master_name} 1000\n"
            f"sentinel failover-timeout {master_name} 5000\n"
        )
        self.sentinel_servers = [
            RedisServer(
                directory / f"sentinel-{index}",
                port=port,
                config=config,
                args=["--sentinel"],
            )
            for index, port in enumerate(ports[1 + replicas :])
        ]
        self.start_seconds = 0.0

    def __enter__(self) -> RedisSentinelSet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """
        Start the servers and the Sentinels; wait until the replicas are in
        sync and every Sentinel knows the master, the replicas and the other
        Sentinels (a failover needs them to).
        """
        began = time.monotonic()
        try:
            for server in self.servers:
                server.start()
            for sentinel in self.sentinel_servers:
                sentinel.start()
            poll(self._ready, START_TIMEOUT, "the Sentinel set", self.describe)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Kill every process (SIGKILL); again is harmless."""
        errors = []
        for server in [*self.sentinel_servers, *self.servers]:
            try:
                server.kill()
            except Exception as error:  # kill the others all the same
                errors.append(error)
        if errors:
            raise errors[0]

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """The (host, port) of every Sentinel."""
        return [("127.0.0.1", sentinel.port) for sentinel in self.sentinel_servers]

    def master_address(self, sentinel: RedisServer | None = None) -> tuple[str, int]:
        """SENTINEL get-master-addr-by-name, of ``sentinel`` or the first alive."""
        if sentinel is None:
            sentinel = next(s for s in self.sentinel_servers if s.alive)
        reply = command(
            sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
        )
        if not reply:
            raise AssertionError(f"the Sentinel knows no {self.master_name}")
        return str(reply[0]), int(reply[1])

    def server_on(self, port: int) -> RedisServer:
        for server in self.servers:
            if server.port == port:
                return server
        raise KeyError(port)

    def master(self) -> RedisServer:
        """The master, as the Sentinels say now."""
        return self.server_on(self.master_address()[1])

    def replicas(self) -> list[RedisServer]:
        """The servers alive other than the master."""
        master = self.master()
        return [s for s in self.servers if s.alive and s is not master]

    def kill_master(self) -> RedisServer:
        """Kill the master at once (SIGKILL); return it."""
        master = self.master()
        master.kill()
        return master

    def wait_failover(
        self, old_master: RedisServer | None = None, timeout: float = FAILOVER_TIMEOUT
    ) -> RedisServer:
        """
        Wait until every Sentinel alive names a master other than
        ``old_master`` (by default: the one dead now) and that server says it
        is a master; return it.
        """
        if old_master is None:
            dead = [server for server in self.servers if not server.alive]
            if len(dead) != 1:
                raise AssertionError("say which master was killed")
            old_master = dead[0]
        old = old_master

        def promoted() -> RedisServer | None:
            ports = {
                self.master_address(sentinel)[1]
                for sentinel in self.sentinel_servers
                if sentinel.alive
            }
            if len(ports) != 1:
                return None
            new = self.server_on(ports.pop())
            if new is old or not new.alive or _role_of(new.port) != "master":
                return None
            return new

        return poll(
            promoted,
            timeout,
            f"the Sentinels to replace the master on port {old.port}",
            self.describe,
        )

    def restart(
        self,
        server: RedisServer,
        *,
        as_replica: bool = True,
        timeout: float | None = None,
    ) -> None:
        """
        Start a killed server again (empty) and wait until it is a replica of
        the master, in sync.

        ``as_replica``: started as a replica of the master the Sentinels name
        now (quick); or else as it was, so that a former master comes back
        as a master, stale, until the Sentinels make it a replica (up to
        10 s later, or more: as a server whose configuration they could not
        rewrite while it was down).
        """
        if server.alive:
            raise AssertionError(f"the server on port {server.port} is alive")
        args = _without_replicaof(server.args)
        if as_replica:
            host, port = self.master_address()
            args += ["--replicaof", host, str(port)]
        server.args = args
        server.start()
        if timeout is None:
            timeout = FAILOVER_TIMEOUT if as_replica else DEMOTE_TIMEOUT

        def synced() -> bool | None:
            replication = info(server.port, "replication")
            master = self.master()
            if (
                replication.get("role") == "slave"
                and replication.get("master_port") == master.port
                and replication.get("master_link_status") == "up"
                and not replication.get("master_sync_in_progress")
            ):
                return True
            return None

        poll(synced, timeout, f"port {server.port} to be a replica", self.describe)

    def _ready(self) -> bool | None:
        master = self.servers[0]
        if _role_of(master.port) != "master":
            return None
        for replica in self.servers[1:]:
            replication = info(replica.port, "replication")
            if replication.get("master_link_status") != "up":
                return None
        for sentinel in self.sentinel_servers:
            state = self._sentinel_state(sentinel)
            if (
                state.get("flags") != "master"
                or int(state.get("port", 0)) != master.port
                or int(state.get("num-slaves", 0)) != len(self.servers) - 1
                or int(state.get("num-other-sentinels", 0))
                != len(self.sentinel_servers) - 1
            ):
                return None
        return True

    def _sentinel_state(self, sentinel: RedisServer) -> dict[str, str]:
        reply = command(sentinel.port, "SENTINEL", "MASTER", self.master_name)
        return dict(zip(reply[::2], reply[1::2], strict=True))

    def describe(self) -> str:
        """What every process alive says, for the message of a failure."""
        parts = []
        for server in self.servers:
            if not server.alive:
                parts.append(f"redis :{server.port}: dead")
                continue
            try:
                replication = info(server.port, "replication")
            except redis.RedisError as error:
                parts.append(f"redis :{server.port}: {error!r}")
                continue
            fields = ("role", "master_port", "master_link_status")
            parts.append(
                f"redis :{server.port}: "
                + ", ".join(f"{key}={replication.get(key)}" for key in fields)
            )
        for sentinel in self.sentinel_servers:
            if not sentinel.alive:
                parts.append(f"sentinel :{sentinel.port}: dead")
                continue
            try:
                state = self._sentinel_state(sentinel)
            except redis.RedisError as error:
                parts.append(f"sentinel :{sentinel.port}: {error!r}")
                continue
            keys = ("port", "flags", "num-slaves", "num-other-sentinels")
            parts.append(
                f"sentinel :{sentinel.port}: "
                + ", ".join(f"{key}={state.get(key)}" for key in keys)
            )
        return "\n".join(parts)


# The fixtures, for tests/broadcast/conftest.py to import. Named explicitly,
# so that a test module may import them under other names (as its arguments'
# names would shadow the imports).


@pytest.fixture(name="redis_cluster")
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterSet]:
    """A Redis Cluster of this test's own: 3 masters, a replica each."""
    with RedisClusterSet(tmp_path / "redis-cluster") as cluster:
        yield cluster


@pytest.fixture(name="redis_sentinel")
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinelSet]:
    """A master, a replica and 3 Sentinels of this test's own."""
    with RedisSentinelSet(tmp_path / "redis-sentinel") as sentinel_set:
        yield sentinel_set
