"""
The RedisBackend when channels move while every connection stays up, on
real local Sentinel and cluster sets (redis_topologies.py): a Sentinel
failover whose old master survives, a slot resharded (``ASK`` and
``TRYAGAIN`` while it migrates), presence with one master not answering,
and the lookup of a cluster's nodes with one that never answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sse_response.broadcast import apublish
from sse_response.broadcast.backends import load_backend
from sse_response.broadcast.positions import channel_tag, parse_event_id
from sse_response.broadcast.redis.backend import RedisBackend
from sse_response.broadcast.redis.topology import ClusterTopology
from sse_response.encoding import encode
from tests.broadcast.helpers import attached
from tests.broadcast.redis_topologies import (
    NodeRole,
    RedisClusterSet,
    RedisSentinelSet,
    clients_of,
    command,
    info,
)
from tests.broadcast.test_redis_cluster import (
    DEADLINE,
    Client,
    Serve,
    channels_by_master,
    clients,
    cluster_setting,
    message,
    until,
    using,
)
from tests.broadcast.test_redis_sentinel import sentinel_setting

pytestmark = pytest.mark.timeout(90)

#: The health interval of the tests' readers (5 s by default): the nodes
#: are looked up again this often.
HEALTH = 0.5


def names(client: Client, channel: str) -> list[int]:
    return [n for _, _, n in client.on(channel)]


async def test_a_sentinel_failover_whose_old_master_survives(
    redis_sentinel: RedisSentinelSet, serve: Serve
) -> None:
    """
    SENTINEL FAILOVER: the old master lives on, a master still for 10 s or
    so (until the Sentinels make it a replica), and no connection of the
    streams' process breaks. The reader finds the new master within a few
    health intervals and moves its channels there, so that what another
    process publishes on the new master reaches the streams, every event
    once, in order, with no reset; this process's publishes follow too.
    """
    channels = ["orders", "news"]
    setting = sentinel_setting(redis_sentinel)
    setting["OPTIONS"] = {**setting["OPTIONS"], "health_check_interval": HEALTH}  # type: ignore[dict-item]
    old = redis_sentinel.master()
    name = f"sse_response-{os.getpid()}"
    with using(setting) as backend:
        assert isinstance(backend, RedisBackend)
        async with clients() as opened:
            client = await Client.open(serve, channels)
            opened.append(client)
            await attached(backend, 1)
            for n in range(1, 11):
                for channel in channels:
                    await apublish(channel, message(channel, n))
            await until(lambda: len(client.events) == 20, DEADLINE, "20 events")
            sentinel = redis_sentinel.sentinel_servers[0]
            assert (
                command(
                    sentinel.port, "SENTINEL", "FAILOVER", redis_sentinel.master_name
                )
                == "OK"
            )
            new = redis_sentinel.wait_failover(old)
            failed_over = time.monotonic()
            assert old.alive
            # Another process, which asks the Sentinels now, publishes on
            # the new master.
            publisher = load_backend(sentinel_setting(redis_sentinel))
            try:
                for n in range(11, 21):
                    for channel in channels:
                        publisher.append(channel, message_bytes(channel, n))
            finally:
                publisher.close()
            moved = await until(
                lambda: len(client.events) == 40,
                DEADLINE,
                "the events published on the new master",
            )
            # This process publishes there too.
            await until(
                lambda: backend.topology.node_for("orders").address[1] == new.port,
                DEADLINE,
                "this process to publish on the new master",
            )
            for n in range(21, 26):
                for channel in channels:
                    await apublish(channel, message(channel, n))
            await until(lambda: len(client.events) == 50, DEADLINE, "50 events")
            assert client.resets() == []
            for channel in channels:
                assert names(client, channel) == list(range(1, 26))
                assert [seq for _, seq, _ in client.on(channel)] == list(range(1, 26))
            # Nothing of this process is left on the old master.
            await until(
                lambda: clients_of(old.port, name) == [],
                DEADLINE,
                "no connection on the old master",
            )
            assert [entry["name"] for entry in clients_of(new.port, name)].count(
                f"{name}-sub"
            ) == 1
    took = moved - failed_over
    print(f"\nsentinel failover, old master alive: streams moved in {took:.2f} s")
    # Before the Sentinels demote the old master (10 s or more), which
    # breaks this process's connections there.
    assert took < 8 * HEALTH, took


def message_bytes(channel: str, n: int) -> bytes:
    """What publish() stores for message(channel, n)."""
    return encode(message(channel, n))


# A slot resharded.


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """A cluster for the tests that leave it healthy (slots may have moved)."""
    with RedisClusterSet(tmp_path_factory.mktemp("cluster")) as cluster_set:
        yield cluster_set


class Migration:
    """One slot moving from its master to another, as redis-cli does it."""

    def __init__(self, cluster: RedisClusterSet, channel: str) -> None:
        self.cluster = cluster
        self.slot = str(cluster.keyslot(f"{{{channel}}}"))
        self.source: NodeRole = cluster.master_for(f"{{{channel}}}")
        self.target = next(m for m in cluster.masters() if m.id != self.source.id)
        self.keys = [f"sse_response:{{{channel}}}:{kind}" for kind in ("meta", "log")]

    def begin(self) -> None:
        target, source = self.target, self.source
        assert (
            command(
                target.port, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", source.id
            )
            == "OK"
        )
        assert (
            command(
                source.port, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", target.id
            )
            == "OK"
        )
        # The target has not run the publish script: a publish redirected
        # there loads it first (SCRIPT LOAD and EVALSHA, one ASK for both).
        assert command(target.port, "SCRIPT", "FLUSH") == "OK"

    def move(self, *keys: str) -> None:
        reply = command(
            self.source.port,
            "MIGRATE",
            "127.0.0.1",
            str(self.target.port),
            "",
            "0",
            "5000",
            "KEYS",
            *keys,
        )
        assert reply == "OK", reply

    def move_all(self) -> None:
        """Every key of the slot (the stream's presence hash too)."""
        keys = command(self.source.port, "CLUSTER", "GETKEYSINSLOT", self.slot, "100")
        assert set(self.keys) <= set(keys), keys
        self.move(*keys)

    def end(self) -> None:
        """The slot is the target's, on every master (the source first)."""
        masters = [self.source, self.target] + [
            m
            for m in self.cluster.masters()
            if m.id not in (self.source.id, self.target.id)
        ]
        for master in masters:
            assert (
                command(
                    master.port, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.id
                )
                == "OK"
            )


def tryagain_count(port: int) -> int:
    stats: dict[str, Any] = info(port, "errorstats")
    return int(stats.get("errorstat_TRYAGAIN", {}).get("count", 0))


async def test_a_slot_resharded_while_streaming(
    cluster: RedisClusterSet, serve: Serve
) -> None:
    """
    A channel's slot migrates to another master (redis-cli --cluster
    reshard's steps): while its keys are on the target, history reads
    (XRANGE and HMGET) and a publish (SCRIPT LOAD and EVALSHA, the target
    not knowing the script) follow ASK with an ASKING before each command;
    once the slot is the target's, the stream's channel moves there and
    gets what was published meanwhile: every event once, in order, no reset.
    """
    channel = "resharded"
    migration = Migration(cluster, channel)
    with using(cluster_setting(cluster, health_check_interval=HEALTH)) as backend:
        async with clients() as opened:
            client = await Client.open(serve, [channel])
            opened.append(client)
            await attached(backend, 1)
            for n in range(1, 6):
                await apublish(channel, message(channel, n))
            await until(lambda: len(client.events) == 5, DEADLINE, "5 events")
            migration.begin()
            try:
                migration.move_all()
                page = await backend.read(channel, 0, 100)
                assert [seq for seq, _ in page.entries] == [1, 2, 3, 4, 5]
                assert page.last_seq == 5
                await apublish(channel, message(channel, 6))
            finally:
                migration.end()
            for n in range(7, 11):
                await apublish(channel, message(channel, n))
            await until(lambda: len(client.events) == 10, DEADLINE, "10 events")
            assert client.resets() == []
            assert names(client, channel) == list(range(1, 11))
            assert [seq for _, seq, _ in client.on(channel)] == list(range(1, 11))
            # Its subscription is on the target now, none on the source.
            name = f"sse_response-{os.getpid()}-sub"
            (sub,) = clients_of(migration.target.port, name)
            assert int(sub["ssub"]) == 1
            assert all(
                int(e["ssub"]) == 0 for e in clients_of(migration.source.port, name)
            )


async def test_a_publish_refused_with_tryagain_is_sent_again(
    cluster: RedisClusterSet,
) -> None:
    """
    A publish while the channel's meta hash has moved and its history has
    not (TRYAGAIN: the script's keys are on two nodes) waits for the rest
    to move, a few tries with short pauses, and is stored.
    """
    channel = "tryagain"
    migration = Migration(cluster, channel)
    with using(cluster_setting(cluster)):
        for n in range(1, 4):
            await apublish(channel, message(channel, n))
        migration.begin()
        try:
            migration.move(migration.keys[0])
            before = tryagain_count(migration.source.port)
            publishing = asyncio.ensure_future(apublish(channel, message(channel, 4)))
            await until(
                lambda: tryagain_count(migration.source.port) > before,
                DEADLINE,
                "the publish to be refused with TRYAGAIN",
            )
            migration.move(migration.keys[1])
            event_id = await asyncio.wait_for(publishing, DEADLINE)
        finally:
            migration.end()
    parsed = parse_event_id(event_id)
    assert parsed is not None
    assert parsed.positions[channel_tag(channel)][1] == 4


# Presence with one master not answering.


async def test_presence_stays_on_the_masters_that_answer(
    cluster: RedisClusterSet,
) -> None:
    """
    One master takes no writes (CLIENT PAUSE WRITE) for longer than
    presence_ttl: this process's records of channels on the other masters
    are renewed all along (each node's batch is written on its own), and
    the paused master's come back once it answers again.
    """
    ttl = 4.0
    masters = cluster.masters()
    by_master = channels_by_master(cluster, "presence-", 1)
    # The paused master's channel first: a write of all the channels in
    # order would stop at it.
    channels = [by_master[master.id][0] for master in masters]
    paused = masters[0]
    setting = cluster_setting(cluster, presence_ttl=ttl, socket_timeout=1)
    backend = load_backend(setting)
    reader = load_backend(setting)  # another process, which reads the store
    assert isinstance(reader, RedisBackend)
    store = reader.presence_store()
    registry = backend.presence
    me = registry.process

    def present() -> dict[str, bool]:
        return {channel: me in store.read(channel) for channel in channels}

    try:
        _, written = registry.join(tuple(channels), None, False)
        assert written is not None
        await asyncio.wait_for(asyncio.wrap_future(written), DEADLINE)
        await until(lambda: all(present().values()), DEADLINE, "every record")
        pause_ms = int((ttl + 3) * 1000)
        assert command(paused.port, "CLIENT", "PAUSE", str(pause_ms), "WRITE") == "OK"
        paused_at = time.monotonic()
        try:
            # Past the ttl, with margin, the others are there at every look.
            while time.monotonic() - paused_at < ttl + 2:
                found = await asyncio.to_thread(present)
                since = time.monotonic() - paused_at
                assert found[channels[1]], (since, found)
                assert found[channels[2]], (since, found)
                await asyncio.sleep(0.1)
        finally:
            command(paused.port, "CLIENT", "UNPAUSE")
        await until(
            lambda: all(present().values()),
            DEADLINE,
            "the paused master's record, written again",
        )
    finally:
        registry.close()
        backend.close()
        reader.close()


# The lookup of a cluster's nodes with one that never answers.


def test_a_master_that_never_answers_is_asked_last(
    redis_cluster: RedisClusterSet,
) -> None:
    """
    A master and its replica stopped (SIGSTOP: connections are accepted by
    the kernel, nothing answers, as a host whose packets are dropped): the
    others still list it. Once one lookup of the nodes found it silent (a
    socket timeout), the next ones ask it last and take milliseconds, not
    the timeout a third of the time.
    """
    topology = ClusterTopology(redis_cluster.seed_urls, name="lookup", socket_timeout=1)
    topology.refresh()
    stopped = redis_cluster.masters()[0]
    (replica,) = [r for r in redis_cluster.replicas() if r.master_id == stopped.id]
    pids = [
        process.pid
        for process in (stopped.node.server.process, replica.node.server.process)
        if process is not None
    ]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        took = []
        for _ in range(20):
            began = time.monotonic()
            topology.refresh()
            took.append(time.monotonic() - began)
        assert stopped.port in [node.address[1] for node in topology.nodes()]
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        topology.close()
    slow = [round(seconds, 2) for seconds in took if seconds > 0.5]
    # The one lookup that found it silent, at most.
    assert len(slow) <= 1, took
