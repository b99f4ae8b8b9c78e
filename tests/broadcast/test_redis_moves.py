"""
The RedisBackend when channels move while every connection stays up, on
real local Sentinel and cluster sets (redis_topologies.py): a Sentinel
failover whose old master survives, a slot resharded (``ASK`` and
``TRYAGAIN`` while it migrates), presence with one master not answering,
and the lookup of a cluster's nodes with one that never answers.
"""

from __future__ import annotations

import os
import time

import pytest

from sse_response.broadcast import apublish
from sse_response.broadcast.backends import load_backend
from sse_response.broadcast.redis.backend import RedisBackend
from sse_response.encoding import encode
from tests.broadcast.helpers import attached
from tests.broadcast.redis_topologies import RedisSentinelSet, clients_of, command
from tests.broadcast.test_redis_cluster import (
    DEADLINE,
    Client,
    Serve,
    clients,
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
