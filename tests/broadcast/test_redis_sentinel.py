"""
The RedisBackend behind real local Sentinels (a master, a replica and three
Sentinels, redis_topologies.py): publishing and subscribing through them,
the connection budget, and the master killed while a thread publishes,
with events the failover lost (the scenario of test_redis_cluster.py).
"""

from __future__ import annotations

import os
import signal

import pytest
import redis

from sse_response.broadcast import apublish
from tests.broadcast.helpers import attached
from tests.broadcast.redis_topologies import RedisSentinelSet, clients_of
from tests.broadcast.test_redis_cluster import (
    DEADLINE,
    FLOWING_AGAIN_WITHIN,
    Client,
    Outage,
    Serve,
    clients,
    fail_over_while_publishing,
    message,
    nothing_there,
    pause_replica,
    redis_setting,
    silent_listener,
    until,
    using,
)
from tests.integration.servers import free_port

pytestmark = pytest.mark.timeout(60)


def sentinel_setting(sentinels: RedisSentinelSet, db: int = 0) -> dict[str, object]:
    return redis_setting(
        [f"redis://{host}:{port}/{db}" for host, port in sentinels.sentinels],
        sentinel=sentinels.master_name,
    )


async def test_publish_and_subscribe_through_the_sentinels(
    redis_sentinel: RedisSentinelSet, serve: Serve
) -> None:
    """
    Events and resume as on one Redis, on the master the Sentinels name
    (with the database of the first URL); one command and one PUB/SUB
    connection on it, none on the replica.
    """
    channels = ["news", "user-1"]
    with using(sentinel_setting(redis_sentinel, db=2)) as backend:
        async with clients() as opened:
            first = await Client.open(serve, channels)
            opened.append(first)
            await attached(backend, 1)
            for n in range(1, 11):
                for channel in channels:
                    await apublish(channel, message(channel, n))
            await until(lambda: len(first.events) == 20, DEADLINE, "20 events")
            await first.close()
            for n in range(11, 21):
                for channel in channels:
                    await apublish(channel, message(channel, n))
            again = await Client.open(
                serve, channels, "wsgi", first.events[-1].last_event_id
            )
            opened.append(again)
            await until(lambda: len(again.events) == 20, DEADLINE, "the replay")
            assert again.resets() == []
            for channel in channels:
                assert [n for _, _, n in first.on(channel)] == list(range(1, 11))
                assert [n for _, _, n in again.on(channel)] == list(range(11, 21))
            master = redis_sentinel.master()
            name = f"sse_response-{os.getpid()}"
            assert sorted(e["name"] for e in clients_of(master.port, name)) == [
                f"{name}-cmd",
                f"{name}-sub",
            ]
            for replica in redis_sentinel.replicas():
                assert clients_of(replica.port, name) == []
            with redis.Redis(port=master.port, db=2) as client:
                assert client.exists("sse_response:{news}:log")
            with redis.Redis(port=master.port, db=0) as client:
                assert not client.exists("sse_response:{news}:log")


async def test_a_master_killed_mid_publish_while_the_sentinels_promote_its_replica(
    redis_sentinel: RedisSentinelSet,
    serve: Serve,
    capsys: pytest.CaptureFixture[str],
) -> None:
    master = redis_sentinel.master()
    (replica,) = redis_sentinel.replicas()
    assert replica.process is not None
    replica_pid = replica.process.pid

    def promote() -> int:
        os.kill(replica_pid, signal.SIGCONT)
        return redis_sentinel.wait_failover(master).port

    outage = Outage(
        pause_replica=lambda: pause_replica(replica_pid, master.port),
        kill_master=master.kill,
        promote=promote,
        release=lambda: os.kill(replica_pid, signal.SIGCONT),
    )
    with using(sentinel_setting(redis_sentinel)) as backend:
        report = await fail_over_while_publishing(
            serve, backend, "orders", "news", outage
        )
    with capsys.disabled():
        print(
            f"\nsentinel failover: {report.failures} publishes raised "
            f"BroadcastError, {report.lost} acknowledged events lost; after the "
            f"promotion, first publish stored {report.first_publish:+.2f} s, first "
            f"event received {report.first_event:+.2f} s"
        )
    assert report.first_publish < FLOWING_AGAIN_WITHIN
    assert report.first_event < FLOWING_AGAIN_WITHIN


async def test_sentinels_that_are_not_there(serve: Serve) -> None:
    """
    No Sentinel listening, or one that never answers: streams end with
    retry:, publish() raises BroadcastError within the socket timeout.
    """
    nothing = f"redis://127.0.0.1:{free_port()}/0"
    with silent_listener() as port:
        silent = f"redis://127.0.0.1:{port}/0"
        await nothing_there(
            serve,
            [
                redis_setting(location, sentinel="mymaster", socket_timeout=1)
                for location in ([nothing], [silent, nothing])
            ],
        )
