"""
The RedisBackend reader's PUB/SUB links on a real redis-server: a process
with more than 1024 open files, a link that goes silent without being
closed (a NAT or load balancer that drops an idle connection), the TCP
keepalive of every connection, and the catch-up after a lost link, in
round trips.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator

import pytest

from sse_response.broadcast import apublish
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.redis.reader import Reader
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
