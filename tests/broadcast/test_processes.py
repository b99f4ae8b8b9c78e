"""
Broadcast across processes: two uvicorn processes and one gunicorn gthread
process share one real redis-server; a publisher runs in a process of its
own; clients read with httpx and reconnect with ``Last-Event-ID``, as
EventSource does.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import h11
import httpx
import pytest

from sse_response.broadcast.positions import channel_tag
from sse_response.parsing import EventStreamParser, ServerSentEvent
from tests.broadcast.postgres_server import PostgresServer
from tests.broadcast.redis_server import RedisServer
from tests.broadcast.services import PostgresService, RedisService, Service
from tests.integration.clients import Stream
from tests.integration.conftest import ServerFactory
from tests.integration.servers import REPO, Server

pytestmark = pytest.mark.timeout(120)

EVENTS = 2000
CLIENTS = 12


@pytest.fixture(scope="module")
def postgres_service() -> Iterator[PostgresService]:
    server = PostgresServer()
    try:
        server.start()
        yield PostgresService(server)
    finally:
        server.remove()


@pytest.fixture(params=["redis", "postgres"])
def service(request: pytest.FixtureRequest) -> Service:
    """The service of the backend every process of the test shares."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisService(server)
    postgres: PostgresService = request.getfixturevalue("postgres_service")
    with postgres.server.connect() as connection:
        connection.execute(
            "TRUNCATE sse_response_event, sse_response_channel, sse_response_epoch"
        )
    return postgres


@pytest.fixture
def servers(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    factory = ServerFactory(tmp_path_factory)
    env = service.env
    try:
        yield [
            factory.start(name, env=env, streams=64)
            for name in ("uvicorn-httptools", "uvicorn-h11", "gunicorn-gthread")
        ]
    finally:
        factory.stop_all()


def start_publisher(
    service: Service, channel: str, interval: float
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.broadcast.publisher",
            channel,
            "1",
            str(EVENTS),
            str(interval),
        ],
        cwd=REPO,
        env=service.process_env(),
    )


async def read_until_cut(
    client: httpx.AsyncClient,
    url: str,
    last_event_id: str | None,
    cut_after: int,
    received: list[int],
    resets: list[str],
) -> str | None:
    """Read one connection until ``cut_after`` events or its end; return the last id."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    parser = EventStreamParser()
    if last_event_id:
        parser.last_event_id = last_event_id
    count = 0
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            for event in parser.feed(chunk):
                if event.type == "stream-reset":
                    resets.append(event.data)
                    continue
                received.append(json.loads(event.data)["n"])
                count += 1
            if count >= cut_after or (received and received[-1] == EVENTS):
                break
    return parser.last_event_id or last_event_id


async def a_client(
    index: int, servers: list[Server], rng: random.Random, start_id: str
) -> tuple[list[int], list[str], int]:
    received: list[int] = []
    resets: list[str] = []
    last_event_id: str | None = start_id
    connections = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
        while not received or received[-1] != EVENTS:
            assert connections < 200, "too many connections"
            server = servers[(index + connections) % len(servers)]
            connections += 1
            last_event_id = await read_until_cut(
                client,
                server.url("/broadcast/?channel=orders&heartbeat=1"),
                last_event_id,
                rng.randint(50, 300),
                received,
                resets,
            )
    return received, resets, connections


def test_12_clients_cut_off_and_reconnecting_get_every_event_once_in_order(
    service: Service, servers: list[Server]
) -> None:
    rng = random.Random(9)
    start_id = service.from_the_start("orders")

    async def run() -> list[tuple[list[int], list[str], int]]:
        tasks = [
            asyncio.ensure_future(
                a_client(i, servers, random.Random(rng.random()), start_id)
            )
            for i in range(CLIENTS)
        ]
        publisher = await asyncio.to_thread(start_publisher, service, "orders", 0.002)
        try:
            return await asyncio.wait_for(asyncio.gather(*tasks), 90)
        finally:
            await asyncio.to_thread(publisher.wait, 30)

    results = asyncio.run(run())
    for received, resets, connections in results:
        assert resets == []
        assert received == list(range(1, EVENTS + 1))
        assert connections >= 2000 // 300
    per_process = service.connections_per_process()
    # Three servers each reached the service, with at most 2 connections each.
    assert len(per_process) >= 3, per_process
    assert max(per_process.values()) <= 2, per_process


def test_publish_from_a_sync_view_an_async_view_and_the_management_command(
    service: Service, servers: list[Server]
) -> None:
    """A sync view under gunicorn (WSGI), an async one under uvicorn, the command."""
    uvicorn, _, gunicorn = servers
    headers = {"Last-Event-ID": service.from_the_start("news")}
    with httpx.Client(timeout=10) as client:
        streams = [
            Stream(client, server.url("/broadcast/?channel=news"), headers=headers)
            for server in servers
        ]
        try:
            published = client.get(gunicorn.url("/broadcast/publish/?channel=news&n=1"))
            assert published.status_code == 200
            published = client.get(uvicorn.url("/broadcast/apublish/?channel=news&n=2"))
            assert published.status_code == 200
            command = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "sse_publish",
                    "news",
                    "--event",
                    "n",
                    "--data",
                    '{"n": 3}',
                ],
                cwd=REPO,
                env=service.process_env(),
                capture_output=True,
                timeout=60,
                check=True,
            )
            assert command.stdout.decode().startswith(f"{channel_tag('news')}3:")
            for stream in streams:
                events = stream.events(3)
                assert [json.loads(event.data)["n"] for event in events] == [1, 2, 3]
                assert events[2].type == "n"
        finally:
            for stream in streams:
                stream.close()


def test_a_client_that_stops_reading_while_20_mb_are_published(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """
    Server memory stays bounded, another subscriber keeps its latency, and
    the slow one, once it reads again, is ended with retry: and resumes
    without a gap.
    """
    factory = ServerFactory(tmp_path_factory)
    try:
        server = factory.start("uvicorn-httptools", env=service.env)
        url = "/broadcast/?channel=big&heartbeat=0.5"
        headers = {"Last-Event-ID": service.from_the_start("big")}
        with (
            httpx.Client(timeout=30) as client,
            Stream(client, server.url(url), headers=headers) as fast,
        ):
            slow = SlowClient(server.port, url, headers, receive_buffer=4096)
            try:
                rss_before = rss_of(server.pid)
                publisher = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.broadcast.publisher",
                        "big",
                        "1",
                        "2000",
                        "0.001",
                        "10000",
                    ],
                    cwd=REPO,
                    env=service.process_env(),
                )
                latencies = []
                for n in range(1, 2001):
                    event = fast.next_event()
                    data = json.loads(event.data)
                    assert data["n"] == n
                    latencies.append(time.time() - data["at"])
                    if n % 200 == 0:
                        rss_peak = max(rss_of(server.pid), locals().get("rss_peak", 0))
                assert publisher.wait(30) == 0
                rss_after = rss_of(server.pid)
                growth = (max(rss_after, rss_peak) - rss_before) / 2**20
                latencies.sort()
                p99 = latencies[int(len(latencies) * 0.99)]
                print(
                    "broadcast: RSS growth, 20 MB to a stalled client",
                    f"{growth:.1f} MiB",
                )
                print(
                    "broadcast: p99 latency of the other client", f"{p99 * 1000:.0f} ms"
                )
                assert growth < 15, f"the server grew by {growth:.1f} MiB"
                assert p99 < 1.0
                # The slow client reads again: what was in flight, then retry:.
                received = []
                while (caught_up := slow.next_event()) is not None:
                    received.append(json.loads(caught_up.data)["n"])
                assert slow.parser.retry == 1000
                last_id = slow.parser.last_event_id
            finally:
                slow.close()
            with Stream(
                client, server.url(url), headers={"Last-Event-ID": last_id}
            ) as again:
                rest = [
                    json.loads(e.data)["n"] for e in again.events(2000 - len(received))
                ]
        assert received + rest == list(range(1, 2001))
    finally:
        factory.stop_all()


class SlowClient:
    """
    An HTTP/1.1 client on a socket with a small receive buffer, that reads
    only when asked: while it is not asked, the server cannot send.
    """

    def __init__(
        self, port: int, path: str, headers: dict[str, str], receive_buffer: int
    ) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.http = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=path,
            headers=[("Host", f"127.0.0.1:{port}"), *headers.items()],
        )
        self.sock.sendall(self.http.send(request) + self.http.send(h11.EndOfMessage()))
        self.parser = EventStreamParser()
        self.pending: collections.deque[ServerSentEvent] = collections.deque()
        self.ended = False

    def _read(self) -> None:
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
            elif isinstance(event, h11.Data):
                self.pending.extend(self.parser.feed(bytes(event.data)))
                return
            else:
                self.ended = True
                return

    def next_event(self) -> ServerSentEvent | None:
        """The next event; ``None`` at the end of the stream."""
        while not self.pending and not self.ended:
            self._read()
        return self.pending.popleft() if self.pending else None

    def close(self) -> None:
        self.sock.close()


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")
