"""
The RedisBackend reader's PUB/SUB links on a real redis-server: a process
with more than 1024 open files, a link that goes silent without being
closed (a NAT or load balancer that drops an idle connection), the TCP
keepalive of every connection, and the catch-up after a lost link, in
round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from django.test import override_settings

from sse_response.broadcast import apublish
from sse_response.broadcast.backends import load_backend
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.hub import EVENT, RENAME, Subscriber
from sse_response.broadcast.redis.backend import RedisBackend
from sse_response.broadcast.redis.reader import Reader
from sse_response.broadcast.redis.topology import KEEPALIVE
from sse_response.checks import check_settings
from sse_response.encoding import encode
from tests.broadcast.helpers import attached
from tests.broadcast.redis_server import RedisServer
from tests.broadcast.test_redis_cluster import (
    DEADLINE,
    Client,
    Serve,
    clients,
    message,
    redis_setting,
    until,
    using,
)

pytestmark = pytest.mark.timeout(60)

#: The health interval of the tests' readers (5 s by default): a silent
#: link is found within a few of them.
HEALTH = 0.5

#: File descriptors the test holds open, so that the reader's sockets get
#: numbers past select()'s limit of 1024.
HELD_DESCRIPTORS = 1100


def sub_connections(server: RedisServer) -> list[dict[str, object]]:
    """This process's PUB/SUB connections on ``server``."""
    return server.clients_named(f"sse_response-{os.getpid()}-sub")


@contextlib.contextmanager
def descriptors_held(count: int) -> Iterator[int]:
    """
    Hold pipes open until every descriptor below ``count`` is taken (the
    kernel hands out the lowest free one, so the next socket of the process
    gets a number above it); yield the highest held.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + 200
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(
            f"RLIMIT_NOFILE's hard limit is {hard}: this test needs {needed} "
            "open files to give the reader's sockets numbers above 1024"
        )
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    held: list[int] = []
    try:
        while not held or max(held) < count:
            held.extend(os.pipe())
        yield max(held)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_reader_whose_sockets_are_past_1024_delivers_and_reconnects(
    redis_server: RedisServer, serve: Serve
) -> None:
    """
    A worker with more than 1024 open files (thousands of streams): the
    reader's sockets get numbers that select() refuses. It subscribes,
    delivers, and after its PUB/SUB connection is killed, connects again
    (on a socket past 1024 too) and delivers again, nothing missing.
    """
    with (
        descriptors_held(HELD_DESCRIPTORS) as highest,
        using(redis_setting(redis_server.url)) as backend,
    ):
        async with clients() as opened:
            client = await Client.open(serve, ["orders"])
            opened.append(client)
            await attached(backend, 1)
            for n in range(1, 6):
                await apublish("orders", message("orders", n))
            await until(lambda: len(client.events) == 5, DEADLINE, "5 events")
            (before,) = sub_connections(redis_server)
            with redis_server.client() as admin:
                assert admin.client_kill_filter(_type="pubsub") == 1
            await until(
                lambda: (
                    [c["id"] for c in sub_connections(redis_server)]
                    not in ([], [before["id"]])
                ),
                DEADLINE,
                "the reader to connect again",
            )
            # The new connection's socket is past 1024 too.
            watched = [link.watched for link in reader_of(backend)._links.values()]
            assert [s is not None and s.fileno() > highest for s in watched] == [True]
            for n in range(6, 11):
                await apublish("orders", message("orders", n))
            await until(lambda: len(client.events) == 10, DEADLINE, "10 events")
            assert client.resets() == []
            assert [n for _, _, n in client.on("orders")] == list(range(1, 11))


def reader_of(backend: BaseBackend) -> Reader:
    reader = backend._reader  # type: ignore[attr-defined]
    assert isinstance(reader, Reader)
    return reader


# A link gone silent.


class _Pair:
    """A connection through the proxy: the client's side and Redis's."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.silent = threading.Event()


class RedisProxy:
    """
    A TCP proxy on 127.0.0.1 in front of a Redis: every connection made to
    it is forwarded to the Redis on ``port``, until :meth:`blackhole`,
    after which the connections open then forward nothing either way and
    are never closed (as a NAT or a load balancer that dropped them, or a
    host gone without a reset); connections made after that are forwarded.
    """

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.pairs: list[_Pair] = []
        self.cut_off: list[_Pair] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.refusing = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisProxy:
        self.threads[0].start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.closed.set()
        for thread in list(self.threads):
            thread.join(5)
        self.listener.close()
        with self.lock:
            for pair in [*self.pairs, *self.cut_off]:
                for sock in pair.sockets:
                    sock.close()

    def cut(self) -> None:
        """
        Close every connection open now, and refuse new ones (accepted, then
        closed) until :meth:`reopen`.
        """
        self.refusing.set()
        with self.lock:
            pairs, self.pairs = self.pairs, []
            self.cut_off.extend(pairs)  # closed at the end
        for pair in pairs:
            pair.silent.set()
            for sock in pair.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def reopen(self) -> None:
        self.refusing.clear()

    def blackhole(self) -> int:
        """Silence every connection open now; return how many."""
        with self.lock:
            for pair in self.pairs:
                pair.silent.set()
            return len(self.pairs)

    def _accept(self) -> None:
        self.listener.settimeout(0.05)
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            if self.refusing.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            pair = _Pair(client, upstream)
            with self.lock:
                self.pairs.append(pair)
            for source, target in ((client, upstream), (upstream, client)):
                thread = threading.Thread(
                    target=self._pump, args=(pair, source, target), daemon=True
                )
                self.threads.append(thread)
                thread.start()

    def _pump(self, pair: _Pair, source: socket.socket, target: socket.socket) -> None:
        while not self.closed.is_set() and not pair.silent.is_set():
            readable, _, _ = select.select([source], [], [], 0.05)
            if not readable or pair.silent.is_set():
                continue
            try:
                data = source.recv(65536)
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
            except OSError:
                return


async def test_a_link_gone_silent_is_found_and_its_channels_catch_up(
    redis_server: RedisServer, serve: Serve
) -> None:
    """
    Every connection of the streams' process to Redis goes silent, none is
    closed: the reader PINGs its PUB/SUB connection, takes it for lost
    when nothing comes back, connects again (the command connection, as
    silent, times out once), and the streams get every event published
    meanwhile, from history, once, in order, within a few health intervals.
    """
    channels = ["orders", "news"]
    with RedisProxy(redis_server.port) as proxy:
        streams = load_backend(
            redis_setting(proxy.url, health_check_interval=HEALTH, socket_timeout=1)
        )
        try:
            # The process's backend publishes, straight to Redis.
            with using(redis_setting(redis_server.url)):
                async with clients() as opened:
                    client = await Client.open(serve, channels, backend=streams)
                    opened.append(client)
                    await attached(streams, 1)
                    for n in range(1, 6):
                        for channel in channels:
                            await apublish(channel, message(channel, n))
                    await until(lambda: len(client.events) == 10, DEADLINE, "10")
                    assert proxy.blackhole() == 2  # the PUB/SUB and command ones
                    silenced = time.monotonic()
                    for n in range(6, 16):
                        for channel in channels:
                            await apublish(channel, message(channel, n))
                    caught_up = await until(
                        lambda: len(client.events) == 30,
                        DEADLINE,
                        "the events published while the link was silent",
                    )
                    assert client.resets() == []
                    for channel in channels:
                        got = client.on(channel)
                        assert [n for _, _, n in got] == list(range(1, 16))
                        assert [seq for _, seq, _ in got] == list(range(1, 16))
        finally:
            streams.close()
    took = caught_up - silenced
    # The PING after HEALTH s, its timeout (the socket timeout, 1 s), the
    # command connection's timeout (1 s), the reconnections: about 3 s.
    assert took < 12 * HEALTH, took
    print(f"\nsilent link: every event delivered {took:.2f} s after the blackhole")


async def test_every_connection_has_tcp_keepalive(
    redis_server: RedisServer, serve: Serve
) -> None:
    """
    The PUB/SUB and command connections probe a silent peer after 15 s
    (not the OS's 2 h): a NAT's dropped mapping or a vanished host shows.
    """
    with using(redis_setting(redis_server.url)) as backend:
        async with clients() as opened:
            opened.append(await Client.open(serve, ["orders"]))
            await attached(backend, 1)
            await apublish("orders", message("orders", 1))
            await until(lambda: len(opened[0].events) == 1, DEADLINE, "the event")
            assert isinstance(backend, RedisBackend)
            command = backend.topology.nodes()[0]._connection._sock
            (link,) = reader_of(backend)._links.values()
            for sock in (command, link.watched):
                assert sock is not None
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert KEEPALIVE, "the platform has no keepalive options"
                for option, value in KEEPALIVE.items():
                    assert sock.getsockopt(socket.IPPROTO_TCP, option) == value


async def test_a_redis_on_a_unix_socket(tmp_path: Path, serve: Serve) -> None:
    """unix:// works: no keepalive arguments for a unix socket's connection."""
    path = tmp_path / "redis.sock"
    server = RedisServer(
        tmp_path / "redis", args=["--unixsocket", str(path), "--unixsocketperm", "700"]
    )
    server.start()
    try:
        with using(redis_setting(f"unix://{path}")) as backend:
            async with clients() as opened:
                opened.append(await Client.open(serve, ["orders"]))
                await attached(backend, 1)
                await apublish("orders", message("orders", 1))
                await until(lambda: len(opened[0].events) == 1, DEADLINE, "the event")
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("interval", "ids"),
    [(0.5, []), (30, []), (0, ["sse_response.E028"]), ("5", ["sse_response.E028"])],
)
def test_the_health_check_interval_is_checked(interval: Any, ids: list[str]) -> None:
    setting = redis_setting("redis://127.0.0.1:6379/0", health_check_interval=interval)
    with override_settings(SSE_RESPONSE_BROADCAST=setting):
        assert [error.id for error in check_settings()] == ids


# The catch-up after a lost link, in round trips.


def reads_processed(server: RedisServer) -> int:
    """How many reads of its clients' sockets the server has made."""
    with server.client() as admin:
        return int(admin.info("stats")["total_reads_processed"])


async def test_the_catch_up_of_2000_channels_takes_a_round_trip_per_100(
    redis_server: RedisServer,
) -> None:
    """
    2,000 channels, the link lost while each gets an event: once Redis can
    be reached again, each channel gets its event (once, nothing else), in
    about 2,000 / 100 pipelined round trips, not one per channel (counted
    by the server: total_reads_processed, one read or so per round trip).
    """
    channels = [f"user-{number}" for number in range(2000)]
    with RedisProxy(redis_server.port) as proxy:
        streams = load_backend(redis_setting(proxy.url))
        publisher = load_backend(redis_setting(redis_server.url))
        try:
            subscriber = Subscriber(tuple(channels), limit=64 * 1024 * 1024)
            await streams.attach(subscriber)

            def publish_all(n: int) -> None:
                for channel in channels:
                    publisher.append(channel, encode(message(channel, n)))

            await asyncio.to_thread(publish_all, 1)
            await until(
                lambda: set(streams.hub.positions().values()) == {1},
                DEADLINE,
                "the first event of every channel, live",
            )
            proxy.cut()
            await until(
                lambda: sub_connections(redis_server) == [],
                DEADLINE,
                "the PUB/SUB connection to be closed",
            )
            await asyncio.to_thread(publish_all, 2)
            with redis_server.client() as admin:
                admin.config_resetstat()
            before = reads_processed(redis_server)
            proxy.reopen()
            began = time.monotonic()
            caught_up = await until(
                lambda: set(streams.hub.positions().values()) == {2},
                DEADLINE,
                "every channel to catch up",
            )
            reads = reads_processed(redis_server) - before
            with redis_server.client() as admin:
                xranges = admin.info("commandstats")["cmdstat_xrange"]["calls"]
        finally:
            publisher.close()
            streams.close()
    got: dict[str, list[int]] = {channel: [] for channel in channels}
    for item in subscriber.items:
        kind, channel, seq = item[0], item[1], item[2]
        if kind == RENAME:
            # Its first event started its first epoch (it had none).
            assert seq == 0, item
            continue
        assert kind == EVENT, item
        got[channel].append(seq)
    assert got == {channel: [1, 2] for channel in channels}
    print(
        f"\ncatch-up of {len(channels)} channels: {caught_up - began:.2f} s, "
        f"{reads} reads by the server, {xranges} XRANGE"
    )
    assert xranges == len(channels)
    # 20 round trips of the catch-up; the subscriptions (2,000 in one
    # pipeline of 70 KB), the connections' handshakes, these INFO calls.
    assert reads < 120, reads
