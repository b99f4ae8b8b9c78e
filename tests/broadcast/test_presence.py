"""
Presence on every backend (memory, one Redis, a Redis Cluster, PostgreSQL),
in this process through Django's real ASGIHandler and WSGIHandler: who is
subscribed, from before the first event to the end of the stream; join and
leave events; what the info may be; and what a write costs. Across real
processes (a SIGKILLed worker): test_processes.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.core.management import call_command
from django.http import HttpRequest

from sse_response import EventStreamHttpResponse
from sse_response.broadcast import (
    InvalidPresenceError,
    apresence,
    apresence_count,
    apublish,
    presence,
    presence_count,
    subscribe,
)
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.presence import (
    DEFAULT_PRESENCE_TTL,
    MAX_INFO_BYTES,
    REFRESH_SLICE,
    PresenceRegistry,
)
from tests.broadcast.conftest import UseBackend
from tests.broadcast.helpers import attached
from tests.support import PROTOCOLS, WAIT

pytestmark = [pytest.mark.timeout(60)]

Serve = Callable[..., str]


def present(
    *channels: str, info: Any = None, announce: bool = False
) -> Callable[[HttpRequest], EventStreamHttpResponse]:
    def factory(request: HttpRequest) -> EventStreamHttpResponse:
        return EventStreamHttpResponse(
            subscribe(*channels, presence=info, announce=announce),
            request=request,
            heartbeat=0.1,
        )

    return factory


async def eventually(check: Callable[[], Any], expected: Any) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while (got := await check()) != expected:
        assert loop.time() < deadline, f"{got!r} != {expected!r}"
        await asyncio.sleep(0.01)


@pytest.fixture(params=["memory", "redis", "redis_cluster", "postgres"])
def backend(request: pytest.FixtureRequest) -> BaseBackend:
    """Each backend in turn (the cluster one: see redis_cluster_backend)."""
    name = request.param
    if name == "redis_cluster":
        name = "redis_cluster"
    got: BaseBackend = request.getfixturevalue(f"{name}_backend")
    return got


@pytest.fixture
def redis_cluster_backend(redis_cluster: Any) -> Any:
    from django.test import override_settings

    from sse_response.broadcast import get_backend

    setting = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": redis_cluster.seed_urls,
        "OPTIONS": {"cluster": True},
    }
    with override_settings(SSE_RESPONSE_BROADCAST=setting):
        yield get_backend()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
async def test_present_before_the_first_event_and_gone_once_ended(
    backend: BaseBackend, serve: Serve, protocol: str
) -> None:
    ada = {"user": 1, "name": "Ada", "tags": ("a", "b")}
    calls = [
        await PROTOCOLS[protocol](serve(present("room", "lobby", info=ada))),
        await PROTOCOLS[protocol](serve(present("room", info={"user": 2}))),
        await PROTOCOLS[protocol](serve(present("room"))),  # counted, not listed
    ]
    await attached(backend, 3)
    await apublish("room", {"data": "hello"})
    for call in calls:
        assert (await call.read(events=1)).events[0].data == "hello"
    # Every stream sent an event: each was present before it did.
    assert await apresence_count("room") == 3
    assert await apresence_count("lobby") == 1
    assert await apresence_count("nobody") == 0
    listed = await apresence("room")
    # As after a JSON round trip: the tuple is a list.
    assert sorted(listed, key=lambda info: info["user"]) == [
        {"user": 1, "name": "Ada", "tags": ["a", "b"]},
        {"user": 2},
    ]
    assert await apresence("lobby") == [{"user": 1, "name": "Ada", "tags": ["a", "b"]}]
    assert await apresence("nobody") == []

    await calls[0].disconnect()
    await eventually(lambda: apresence_count("room"), 2)
    assert await apresence("lobby") == []
    assert await apresence("room") == [{"user": 2}]
    for call in calls[1:]:
        await call.disconnect()
    await eventually(lambda: apresence_count("room"), 0)


@pytest.mark.asyncio
async def test_join_and_leave_are_announced_when_asked(
    backend: BaseBackend, serve: Serve
) -> None:
    watcher = await PROTOCOLS["asgi"](serve(present("room")))
    await attached(backend, 1)
    visitor = await PROTOCOLS["asgi"](
        serve(present("room", info={"name": "Bo"}, announce=True))
    )
    joined = (await watcher.read(events=1)).events[0]
    assert (joined.type, json.loads(joined.data)) == ("presence-join", {"name": "Bo"})
    # When the join is announced, the visitor is listed.
    assert await apresence("room") == [{"name": "Bo"}]
    await visitor.disconnect()
    left = (await watcher.read(events=2)).events[1]
    assert (left.type, json.loads(left.data)) == ("presence-leave", {"name": "Bo"})
    assert await apresence_count("room") == 1
    await watcher.disconnect()


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ({"name": "Ada", "avatar": b"\x89PNG"}, "avatar"),
        ({"user": {"since": object()}}, "user.since"),
        ({"tags": [1, {2}]}, "tags[1]"),
        ({1: "one"}, "[1]"),
    ],
)
def test_info_json_cannot_hold_is_refused_naming_the_field(
    info: Any, field: str
) -> None:
    with pytest.raises(InvalidPresenceError, match=re.escape(f"field {field!r}")):
        subscribe("room", presence=info)


def test_info_too_big_or_not_finite_is_refused() -> None:
    with pytest.raises(InvalidPresenceError, match=str(MAX_INFO_BYTES)):
        subscribe("room", presence={"name": "x" * MAX_INFO_BYTES})
    with pytest.raises(InvalidPresenceError, match="JSON compliant"):
        subscribe("room", presence={"score": float("nan")})
    subscribe("room", presence={"name": "x" * (MAX_INFO_BYTES - 20)})


@pytest.mark.asyncio
async def test_the_sync_calls_refuse_to_run_in_an_event_loop(
    memory_backend: BaseBackend,
) -> None:
    with pytest.raises(SynchronousOnlyOperation, match="await apresence"):
        presence("room")
    with pytest.raises(SynchronousOnlyOperation, match="await apresence_count"):
        presence_count("room")


def test_the_default_ttl_is_at_most_30_seconds(memory_backend: BaseBackend) -> None:
    assert DEFAULT_PRESENCE_TTL <= 30
    assert memory_backend.presence_ttl == DEFAULT_PRESENCE_TTL
    assert memory_backend.presence.interval <= DEFAULT_PRESENCE_TTL / 3


@pytest.mark.asyncio
async def test_1000_joins_are_a_few_writes_and_a_refresh_is_one(
    use_redis_or_postgres: UseBackend,
) -> None:
    backend = use_redis_or_postgres(presence_ttl=0.6)
    registry = backend.presence
    store = registry.store
    assert store is not None
    writes: list[tuple[int, bool]] = []
    write = store.write

    def counting(process: str, records: Any, *, refresh: bool) -> None:
        writes.append((len(records), refresh))
        write(process, records, refresh=refresh)

    store.write = counting  # type: ignore[method-assign]
    joined = [
        registry.join((f"room-{n % 20}",), json.dumps({"n": n}), False)
        for n in range(1000)
    ]
    await asyncio.gather(*(asyncio.wrap_future(w) for _, w in joined if w))
    assert len(writes) <= 3, writes
    assert await apresence_count("room-0") == 50
    writes.clear()
    await asyncio.sleep(0.5)
    # 0.2 s intervals: a refresh of the 20 channels each time, one write.
    assert 1 <= len(writes) <= 4, writes
    assert all(refresh and n == 20 for n, refresh in writes), writes
    for stream, _ in joined:
        registry.leave(stream)
    await eventually(lambda: apresence_count("room-0"), 0)


@pytest.mark.asyncio
async def test_a_refresh_of_many_channels_is_spread_in_slices(
    use_redis_or_postgres: UseBackend,
) -> None:
    """
    Thousands of channels are refreshed a slice at a time, over half the
    interval, not in one write that would hold the process for a while.
    """
    backend = use_redis_or_postgres(presence_ttl=3.0)
    registry = backend.presence
    store = registry.store
    assert store is not None
    count = 3 * REFRESH_SLICE
    joined = [registry.join((f"many-{n}",), None, False) for n in range(count)]
    await asyncio.gather(*(asyncio.wrap_future(w) for _, w in joined if w))
    writes: list[tuple[int, bool, float]] = []
    write = store.write

    def counting(process: str, records: Any, *, refresh: bool) -> None:
        writes.append((len(records), refresh, time.monotonic()))
        write(process, records, refresh=refresh)

    store.write = counting  # type: ignore[method-assign]
    deadline = time.monotonic() + 2 * registry.interval + 1
    while sum(n for n, refresh, _ in writes if refresh) < count:
        assert time.monotonic() < deadline, writes
        await asyncio.sleep(0.05)
    refreshes = [(n, at) for n, refresh, at in writes if refresh]
    assert all(n <= REFRESH_SLICE for n, _ in refreshes), refreshes
    assert len(refreshes) >= 3
    assert refreshes[-1][1] - refreshes[0][1] <= registry.interval / 2 + 0.5
    for stream, _ in joined:
        registry.leave(stream)
    assert await apresence_count("many-0") == 0


@pytest.fixture(params=["redis", "postgres"])
def use_redis_or_postgres(request: pytest.FixtureRequest) -> UseBackend:
    if request.param == "postgres":
        use: UseBackend = request.getfixturevalue("use_postgres_backend")
        return use
    server = request.getfixturevalue("redis_server")
    from django.test import override_settings

    from sse_response.broadcast import get_backend

    stack = request.getfixturevalue("_settings_stack")

    def use_redis(**options: Any) -> BaseBackend:
        setting = {
            "BACKEND": "sse_response.broadcast.RedisBackend",
            "LOCATION": server.url,
            "OPTIONS": options,
        }
        stack.enter_context(override_settings(SSE_RESPONSE_BROADCAST=setting))
        return get_backend()

    return use_redis


@pytest.fixture
def _settings_stack() -> Any:
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield stack


@pytest.mark.asyncio
async def test_a_process_that_stops_writing_is_dropped_after_the_ttl(
    use_redis_or_postgres: UseBackend,
) -> None:
    """Another process (a registry of its own) that dies: gone within the ttl."""
    backend = use_redis_or_postgres(presence_ttl=1.0)
    other = PresenceRegistry(backend, backend.presence_store(), 1.0)
    _, written = other.join(("room",), '{"pid": "other"}', False)
    assert written is not None
    await asyncio.wrap_future(written)
    assert await apresence("room") == [{"pid": "other"}]
    # It dies: no more writes, and no goodbye.
    with other.lock:
        other._closed = True
        other._wake.notify()
    loop = asyncio.get_running_loop()
    died = loop.time()
    await eventually(lambda: apresence_count("room"), 0)
    assert loop.time() - died <= 1.0 + 0.2


def test_sse_status_shows_channels_counts_and_processes(
    memory_backend: BaseBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = memory_backend.presence
    streams = [
        registry.join(("room",), '{"n": 1}', False)[0],
        registry.join(("room", "lobby"), None, False)[0],
    ]
    call_command("sse_status")
    out = capsys.readouterr().out
    assert "room" in out
    assert "lobby" in out
    assert registry.process in out
    call_command("sse_status", "room", "--json")
    status = json.loads(capsys.readouterr().out)
    assert status["room"]["count"] == 2
    assert status["room"]["processes"] == {registry.process: 2}
    assert status["room"]["presence"] == [{"n": 1}]
    for stream in streams:
        registry.leave(stream)
