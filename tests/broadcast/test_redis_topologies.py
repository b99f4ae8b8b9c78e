"""
The local Redis Cluster and Sentinel sets of redis_topologies.py, checked
with redis-py's own clients: that they serve, deliver sharded messages, and
fail over within their bounds, keeping what was replicated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis.cluster import ClusterPubSub, RedisCluster
from redis.sentinel import Sentinel

from tests.broadcast.redis_topologies import (
    FAILOVER_TIMEOUT,
    SLOTS,
    NodeRole,
    RedisClusterSet,
    RedisSentinelSet,
    redis_version,
)

# The fixtures redis_cluster and redis_sentinel, which conftest.py need not have.
from tests.broadcast.redis_topologies import redis_cluster as cluster_fixture  # noqa: F401
from tests.broadcast.redis_topologies import redis_sentinel as sentinel_fixture  # noqa: F401

# A set starts in a few seconds, and each wait is bounded by less than this.
pytestmark = pytest.mark.timeout(120)

CLIENT_NAME = "topology-test"


def cluster_client(cluster: RedisClusterSet) -> RedisCluster:
    """redis-py's cluster client, seeded with a master alive now."""
    return RedisCluster(
        host="127.0.0.1",
        port=cluster.masters()[0].port,
        decode_responses=True,
        socket_timeout=5,
        client_name=CLIENT_NAME,
    )


@pytest.fixture
def cluster_keys(redis_cluster: RedisClusterSet) -> dict[str, NodeRole]:
    """A key served by each master, with that master."""
    keys: dict[str, NodeRole] = {}
    masters: set[str] = set()
    for number in range(100):
        key = f"key-{number}"
        master = redis_cluster.master_for(key)
        if master.id not in masters:
            masters.add(master.id)
            keys[key] = master
        if len(masters) == 3:
            return keys
    raise AssertionError(f"100 keys did not reach 3 masters: {keys}")


def sharded_message(pubsub: ClusterPubSub, deadline: float) -> object:
    """The next sharded message (not a subscription's confirmation)."""
    while time.monotonic() < deadline:
        message = pubsub.get_sharded_message(  # type: ignore[no-untyped-call]
            ignore_subscribe_messages=True, timeout=0.1
        )
        if message is not None:
            return message
    raise AssertionError("no sharded message came")


def test_redis_is_recent_enough() -> None:
    # Sharded pub/sub (SSUBSCRIBE) and cluster-port are Redis 7.0's.
    assert redis_version() >= (7, 0, 0)


def test_cluster_serves_keys_on_every_master(
    redis_cluster: RedisClusterSet, cluster_keys: dict[str, NodeRole]
) -> None:
    masters = redis_cluster.masters()
    replicas = redis_cluster.replicas()
    assert len(masters) == 3
    assert len(replicas) == 3
    assert sorted(r.master_id or "" for r in replicas) == sorted(m.id for m in masters)
    ranges = sorted(slots for master in masters for slots in master.slots)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == SLOTS - 1
    assert redis_cluster.seed_url in [master.url for master in masters]
    assert len(set(redis_cluster.seed_urls)) == 6

    with cluster_client(redis_cluster) as client:
        for key, master in cluster_keys.items():
            assert client.keyslot(key) == redis_cluster.keyslot(key)
            assert client.get_node_from_key(key).port == master.port
            assert client.set(key, f"value of {key}")
        for key in cluster_keys:
            assert client.get(key) == f"value of {key}"
        # Each master holds its key itself, and redis-py's client reached
        # each through a connection of its own, which CLIENT LIST names.
        for key, master in cluster_keys.items():
            with master.node.client() as direct:
                assert direct.get(key) == f"value of {key}".encode()
            named = redis_cluster.client_list(master, CLIENT_NAME)
            assert len(named) >= 1
    for replica in replicas:
        assert redis_cluster.client_list(replica, CLIENT_NAME) == []


def test_sharded_pubsub_delivers(
    redis_cluster: RedisClusterSet, cluster_keys: dict[str, NodeRole]
) -> None:
    # A channel is sharded by its slot, as a key: one channel per master.
    with cluster_client(redis_cluster) as client:
        pubsub: ClusterPubSub = client.pubsub()
        try:
            pubsub.ssubscribe(*cluster_keys)
            deadline = time.monotonic() + 10
            for key, master in cluster_keys.items():
                # The subscription reached the master of its slot first.
                while not any(
                    int(entry["ssub"]) > 0
                    for entry in redis_cluster.client_list(master, CLIENT_NAME)
                ):
                    pubsub.get_sharded_message(timeout=0.05)  # type: ignore[no-untyped-call]
                    assert time.monotonic() < deadline, f"{key} not subscribed"
            for key in cluster_keys:
                assert client.spublish(key, f"to {key}") == 1
                message = sharded_message(pubsub, deadline)
                assert message == {
                    "type": "smessage",
                    "pattern": None,
                    "channel": key,
                    "data": f"to {key}",
                }
        finally:
            pubsub.close()


def test_killed_master_is_replaced_by_its_replica(
    redis_cluster: RedisClusterSet, cluster_keys: dict[str, NodeRole]
) -> None:
    with cluster_client(redis_cluster) as client:
        for key in cluster_keys:
            client.set(key, f"value of {key}")
    for master in cluster_keys.values():
        with master.node.client() as direct:
            # Replicated before the kill: WAIT for the one replica.
            assert direct.wait(1, 5000) == 1

    killed_key, old = next(iter(cluster_keys.items()))
    (its_replica,) = [r for r in redis_cluster.replicas() if r.master_id == old.id]
    began = time.monotonic()
    redis_cluster.kill(old)
    new = redis_cluster.wait_failover(old)
    failover_seconds = time.monotonic() - began
    # Shown by pytest -rP: the cluster's start and failover times.
    print(f"cluster started in {redis_cluster.start_seconds:.2f} s")
    print(f"cluster failover in {failover_seconds:.2f} s")

    assert new.node is its_replica.node
    assert new.role == "master"
    assert new.slots == old.slots
    assert redis_cluster.master_for(killed_key).node is new.node
    assert failover_seconds < FAILOVER_TIMEOUT
    with cluster_client(redis_cluster) as client:
        for key in cluster_keys:
            assert client.get(key) == f"value of {key}"

    # The old master comes back empty, as the replica of its replacement.
    began = time.monotonic()
    back = redis_cluster.restart(old)
    print(f"cluster node rejoined in {time.monotonic() - began:.2f} s")
    assert back.role == "replica"
    assert back.master_id == new.id
    with new.node.client() as direct:
        assert direct.wait(1, 5000) == 1
    with old.node.client() as direct:
        direct.readonly()
        assert direct.get(killed_key) == f"value of {killed_key}".encode()


@pytest.fixture
def sentinel_client(redis_sentinel: RedisSentinelSet) -> Iterator[Sentinel]:
    with Sentinel(redis_sentinel.sentinels, socket_timeout=5) as sentinel:
        yield sentinel


def test_sentinel_names_the_master(
    redis_sentinel: RedisSentinelSet, sentinel_client: Sentinel
) -> None:
    master = redis_sentinel.master()
    (replica,) = redis_sentinel.replicas()
    assert master is redis_sentinel.servers[0]
    assert redis_sentinel.master_name == "mymaster"
    assert len(redis_sentinel.sentinels) == 3
    for sentinel in redis_sentinel.sentinel_servers:
        assert redis_sentinel.master_address(sentinel) == ("127.0.0.1", master.port)
    assert sentinel_client.discover_master("mymaster") == ("127.0.0.1", master.port)
    assert sentinel_client.discover_slaves("mymaster") == [("127.0.0.1", replica.port)]
    with sentinel_client.master_for("mymaster", socket_timeout=5) as client:
        assert client.set("greeting", "hello")
        assert client.wait(1, 5000) == 1
    with replica.client() as direct:
        assert direct.get("greeting") == b"hello"


def test_sentinel_fails_over(
    redis_sentinel: RedisSentinelSet, sentinel_client: Sentinel
) -> None:
    with sentinel_client.master_for("mymaster", socket_timeout=5) as client:
        client.set("kept", "yes")
        assert client.wait(1, 5000) == 1
    (replica,) = redis_sentinel.replicas()

    began = time.monotonic()
    old = redis_sentinel.kill_master()
    new = redis_sentinel.wait_failover()
    failover_seconds = time.monotonic() - began
    print(f"sentinel set started in {redis_sentinel.start_seconds:.2f} s")
    print(f"sentinel failover in {failover_seconds:.2f} s")

    assert new is replica
    assert failover_seconds < FAILOVER_TIMEOUT
    assert sentinel_client.discover_master("mymaster") == ("127.0.0.1", new.port)
    with sentinel_client.master_for("mymaster", socket_timeout=5) as client:
        assert client.get("kept") == b"yes"
        client.set("after", "failover")

    # The old master comes back as a replica of the new one, and can take
    # over again.
    redis_sentinel.restart(old)
    assert redis_sentinel.replicas() == [old]
    with old.client() as direct:
        assert direct.get("after") == b"failover"
    redis_sentinel.kill_master()
    assert redis_sentinel.wait_failover() is old
