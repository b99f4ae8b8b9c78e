"""
Presence across real processes: two uvicorn servers share one Redis, a Redis
Cluster or PostgreSQL; ``manage.py sse_status`` in a third process sees the
streams of both; one server is SIGKILLed, and its streams are gone once the
ttl (lowered to 3 s here through OPTIONS["presence_ttl"]) has passed, while
the other server's stay listed, refreshed, for as long as they live.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.broadcast.postgres_server import PostgresServer
from tests.broadcast.redis_server import RedisServer
from tests.broadcast.redis_topologies import RedisClusterSet
from tests.broadcast.services import (
    PostgresService,
    RedisClusterService,
    RedisService,
    Service,
)
from tests.integration.clients import Stream
from tests.integration.conftest import ServerFactory
from tests.integration.servers import REPO

pytestmark = pytest.mark.timeout(120)

TTL = 3.0


@pytest.fixture(scope="module")
def postgres_service() -> Iterator[PostgresService]:
    server = PostgresServer()
    try:
        server.start()
        yield PostgresService(server)
    finally:
        server.remove()


@pytest.fixture(params=["redis", "redis-cluster", "postgres"])
def service(request: pytest.FixtureRequest) -> Service:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisService(server)
    if request.param == "redis-cluster":
        cluster: RedisClusterSet = request.getfixturevalue("redis_cluster")
        return RedisClusterService(cluster)
    postgres: PostgresService = request.getfixturevalue("postgres_service")
    return postgres


def status(service: Service, *channels: str) -> dict[str, Any]:
    """What ``manage.py sse_status --json`` says, from a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "django", "sse_status", *channels, "--json"],
        cwd=REPO,
        env={**service.process_env(), "SSE_IT_PRESENCE_TTL": str(TTL)},
        capture_output=True,
        timeout=60,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def wait_for_count(service: Service, count: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        room: dict[str, Any] = status(service, "room")["room"]
        if room["count"] == count:
            return room
        assert time.monotonic() < deadline, room
        time.sleep(0.1)


def test_a_sigkilled_worker_leaves_within_the_ttl(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    factory = ServerFactory(tmp_path_factory)
    env = {**service.env, "SSE_IT_PRESENCE_TTL": str(TTL)}
    try:
        doomed = factory.start("uvicorn-h11", env=env)
        survivor = factory.start("uvicorn-httptools", env=env)

        def url(server: Any, info: Any = None) -> str:
            query = "channel=room&heartbeat=0.5"
            if info is not None:
                query += "&presence=" + urllib.parse.quote(json.dumps(info))
            return str(server.url(f"/broadcast/?{query}"))

        with httpx.Client(timeout=30) as client:
            streams = [
                Stream(client, url(doomed, {"w": "a1"})),
                Stream(client, url(doomed, {"w": "a2"})),
                Stream(client, url(survivor, {"w": "b"})),
                Stream(client, url(survivor)),  # counted, not listed
            ]
            try:
                room = wait_for_count(service, 4)
                assert sorted(i["w"] for i in room["presence"]) == ["a1", "a2", "b"]
                assert sorted(room["processes"].values()) == [2, 2]

                os.killpg(doomed.pid, signal.SIGKILL)
                killed = time.monotonic()
                doomed.wait(10)
                # Its last write was at most now; its records expire at most
                # TTL later (the store's clock). 0.3 s of slack for the clocks.
                time.sleep(max(killed + TTL + 0.3 - time.monotonic(), 0))
                room = status(service, "room")["room"]
                assert room["count"] == 2, room
                assert room["presence"] == [{"w": "b"}]
                assert list(room["processes"].values()) == [2]

                # The survivor refreshes: still listed after twice the ttl.
                time.sleep(TTL)
                assert status(service, "room")["room"]["count"] == 2
                # Every channel with streams, when none is named.
                assert status(service)["room"]["count"] == 2

                # A stream that ends cleanly leaves at once.
                streams[2].close()
                room = wait_for_count(service, 1, timeout=5)
                assert room["presence"] == []
            finally:
                for stream in streams:
                    stream.close()
    finally:
        factory.stop_all()


def test_a_worker_that_exits_cleanly_leaves_at_once(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A ttl far longer than the test: only the exiting process's own write
    # can remove its streams this soon.
    factory = ServerFactory(tmp_path_factory)
    env = {**service.env, "SSE_IT_PRESENCE_TTL": "300"}
    try:
        server = factory.start("uvicorn-h11", env=env)
        with httpx.Client(timeout=30) as client:
            query = "channel=room&heartbeat=0.5&presence=" + urllib.parse.quote('"x"')
            streams = [Stream(client, server.url(f"/broadcast/?{query}"))]
            streams.append(Stream(client, server.url("/broadcast/?channel=room")))
            try:
                wait_for_count(service, 2)
                os.killpg(server.pid, signal.SIGTERM)  # a deploy, a scale-down
                server.wait(15)
                room = status(service, "room")["room"]
                assert room["count"] == 0, room
                assert room["presence"] == []
            finally:
                for stream in streams:
                    stream.close()
    finally:
        factory.stop_all()
