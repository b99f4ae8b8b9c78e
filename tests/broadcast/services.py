"""
The outside services a broadcast backend uses, as the multi-process tests
see them: how the integration project reaches one (environment variables),
where a client that has seen nothing stands, and the connections each
server process holds.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

from sse_response.broadcast.positions import channel_tag, format_event_id
from tests.broadcast.postgres_server import PostgresServer
from tests.broadcast.redis_server import RedisServer
from tests.broadcast.redis_topologies import RedisClusterSet, clients_of
from tests.integration.servers import REPO


class Service:
    """A backend's service for the integration project's processes."""

    name: str
    #: The environment that points the integration project at it.
    env: dict[str, str]

    def epoch(self, channel: str) -> str:
        """The epoch of ``channel`` now (made now if there is none yet)."""
        raise NotImplementedError

    def connections_per_process(self) -> dict[str, int]:
        """How many connections each process holds, by process."""
        raise NotImplementedError

    def from_the_start(self, channel: str) -> str:
        """
        The id of a client that has seen nothing of ``channel`` in this epoch
        (position 0): it is sent every event, whenever it connects, so that
        no test depends on when a stream's subscription is in place.
        """
        return format_event_id([self.epoch(channel)], [channel_tag(channel)], [0])

    def process_env(self) -> dict[str, str]:
        """The environment of a process of the integration project's own."""
        return {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": "tests.integration.project.settings",
            "SSE_IT_STATE": "/nonexistent",
            **self.env,
        }


class RedisService(Service):
    name = "redis"

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.env = {"SSE_IT_REDIS_URL": server.url}

    def epoch(self, channel: str) -> str:
        # The epoch of a channel nothing was stored for yet, which the
        # epoch of its first event continues from position 0.
        return ""

    def connections_per_process(self) -> dict[str, int]:
        counts: collections.Counter[str] = collections.Counter()
        for entry in self.server.clients_named("sse_response-"):
            counts[entry["name"].rsplit("-", 1)[0]] += 1
        return dict(counts)


class RedisClusterService(Service):
    """A Redis Cluster (redis_topologies.py), every node given as a seed."""

    name = "redis-cluster"

    def __init__(self, cluster: RedisClusterSet) -> None:
        self.cluster = cluster
        self.env = {"SSE_IT_REDIS_CLUSTER": json.dumps(cluster.seed_urls)}

    def epoch(self, channel: str) -> str:
        return ""  # As on one Redis: each channel has its own.

    def connections_by_node(self) -> dict[int, list[str]]:
        """The names of the backends' connections on each node alive, by port."""
        return {
            node.port: sorted(
                entry["name"] for entry in clients_of(node.port, "sse_response-")
            )
            for node in self.cluster.alive()
        }

    def connections_per_process(self) -> dict[str, int]:
        """
        By process and node (``<name>@<port>``): on a cluster the budget is
        per node, 2 at most (one PUB/SUB, one command connection).
        """
        counts: collections.Counter[str] = collections.Counter()
        for port, names in self.connections_by_node().items():
            for name in names:
                counts[f"{name.rsplit('-', 1)[0]}@{port}"] += 1
        return dict(counts)


class PostgresService(Service):
    name = "postgres"

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.env = {"SSE_IT_POSTGRES": json.dumps(server.settings)}
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "sse_response", "-v", "0"],
            cwd=REPO,
            env={**os.environ, **self.process_env()},
            check=True,
            timeout=60,
        )

    def epoch(self, channel: str) -> str:
        with self.server.connect() as connection:
            connection.execute(
                "INSERT INTO sse_response_epoch (id, epoch) VALUES (1, 'test') "
                "ON CONFLICT (id) DO NOTHING"
            )
            row = connection.execute(
                "SELECT epoch FROM sse_response_epoch WHERE id = 1"
            ).fetchone()
        assert row is not None
        return str(row[0])

    def connections_per_process(self) -> dict[str, int]:
        counts: collections.Counter[str] = collections.Counter()
        for name in self.server.connections("sse_response-"):
            counts[name.rsplit("-", 1)[0]] += 1
        return dict(counts)
