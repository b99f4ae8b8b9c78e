"""
The RedisBackend on a real local Redis Cluster (3 masters with a replica
each, redis_topologies.py): channels on every master, one stream of channels
on several masters, resume, the connection budget on every node, delivery
and resume across processes, a master killed mid-publish while its replica
takes over (with events acknowledged and then lost by the failover), a
manual failover (``MOVED``), and a cluster that is not there.

The failover scenario (:func:`fail_over_while_publishing`) is shared with
test_redis_sentinel.py: only how the master is failed differs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import override_settings

from sse_response import EventStreamHttpResponse
from sse_response.broadcast import (
    BroadcastError,
    apublish,
    get_backend,
    publish,
    subscribe,
)
from sse_response.broadcast.backends import load_backend
from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.positions import (
    channel_tag,
    format_event_id,
    parse_event_id,
)
from sse_response.broadcast.redis.backend import CONNECT_WAIT
from sse_response.parsing import ServerSentEvent
from tests.broadcast.helpers import attached, streaming
from tests.broadcast.redis_topologies import (
    NodeRole,
    RedisClusterSet,
    command,
    info_field,
    poll,
)
from tests.broadcast.services import RedisClusterService
from tests.broadcast.test_processes import (
    servers,  # noqa: F401  (the fixture, with this module's service)
)
from tests.broadcast.test_processes import (
    test_12_clients_cut_off_and_reconnecting_get_every_event_once_in_order as lossless_resume_across_processes,  # noqa: E501
)
from tests.integration.servers import Server, free_port
from tests.support import PROTOCOLS, Call

pytestmark = pytest.mark.timeout(60)

Serve = Callable[..., str]
#: An event of a channel as a client got it: (epoch, seq, n).
Event = tuple[str, int, int]

#: The bar of the issue: events flow again this soon after the promotion.
FLOWING_AGAIN_WITHIN = 10.0
#: Every wait of these tests on a condition is bounded by this, at most.
DEADLINE = 15.0


# Helpers shared with test_redis_sentinel.py.


def redis_setting(location: str | Sequence[str], **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": location,
        "OPTIONS": {"history": 1000, "socket_timeout": 2, **options},
    }


@contextlib.contextmanager
def using(setting: dict[str, Any]) -> Iterator[BaseBackend]:
    """The process's backend made from ``setting``; closed at the end."""
    with override_settings(SSE_RESPONSE_BROADCAST=setting):
        yield get_backend()


def message(channel: str, n: int) -> dict[str, Any]:
    return {"event": "n", "data": {"c": channel, "n": n}}


async def until(check: Callable[[], object], timeout: float, what: str) -> float:
    """
    Wait until ``check()`` is true, polling every 10 ms; return when it
    was (``time.monotonic()``). Fail after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic()


class Client:
    """
    A stream served in this process (Django's ASGIHandler or WSGIHandler),
    read all along by a task of its own, as a browser reads it.
    """

    def __init__(self, call: Call) -> None:
        self.call = call
        self.task = asyncio.ensure_future(self._pump())

    @classmethod
    async def open(
        cls,
        serve: Serve,
        channels: Sequence[str],
        protocol: str = "asgi",
        last_event_id: str | None = None,
        backend: BaseBackend | None = None,
    ) -> Client:
        """A stream of ``channels``, of ``backend`` (the process's by default)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        if backend is None:
            factory = streaming(*channels)
        else:

            def factory(request: HttpRequest) -> EventStreamHttpResponse:
                return EventStreamHttpResponse(
                    subscribe(*channels, backend=backend),
                    request=request,
                    heartbeat=0.1,
                )

        call = await PROTOCOLS[protocol](serve(factory), headers=headers)
        assert call.status == 200
        return cls(call)

    async def _pump(self) -> None:
        while not self.call.reading.ended:
            # A stream that waits for Redis may send nothing for a while.
            with contextlib.suppress(asyncio.TimeoutError):
                await self.call._next()

    @property
    def events(self) -> list[ServerSentEvent]:
        return self.call.reading.events

    @property
    def ended(self) -> bool:
        return self.call.reading.ended

    def resets(self) -> list[list[str]]:
        return [
            json.loads(event.data)["channels"]
            for event in self.events
            if event.type == "stream-reset"
        ]

    def on(self, channel: str) -> list[Event]:
        """(epoch, seq, n) of each event of ``channel``, its seq from the id."""
        return [item for item in self.timeline(channel) if item is not None]

    def timeline(self, channel: str) -> list[Event | None]:
        """The events of ``channel`` and (as None) the resets naming it, in order."""
        tag = channel_tag(channel)
        found: list[Event | None] = []
        for event in list(self.events):
            if event.type == "stream-reset":
                if channel in json.loads(event.data)["channels"]:
                    found.append(None)
                continue
            data = json.loads(event.data)
            if data["c"] != channel:
                continue
            parsed = parse_event_id(event.last_event_id)
            assert parsed is not None, event
            epoch, seq = parsed.positions[tag]
            found.append((epoch, seq, data["n"]))
        return found

    def reaches(self, channel: str, position: tuple[str, int]) -> Callable[[], bool]:
        """A check for :func:`until`: the client is at ``position`` or past it."""
        epoch, seq = position

        def reached() -> bool:
            now = self.position(channel)
            return now is not None and now[0] == epoch and now[1] >= seq

        return reached

    def position(self, channel: str) -> tuple[str, int] | None:
        """Where the client's last id says it stands on ``channel``."""
        if not self.events:
            return None
        parsed = parse_event_id(self.events[-1].last_event_id)
        assert parsed is not None
        return parsed.positions.get(channel_tag(channel))

    async def close(self) -> None:
        if not self.call.reading.ended:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            await self.call.disconnect()
        else:
            await self.task


@contextlib.asynccontextmanager
async def clients() -> Any:
    """A list to put :class:`Client` objects in, all closed at the end."""
    opened: list[Client] = []
    try:
        yield opened
    finally:
        for client in opened:
            with contextlib.suppress(Exception):
                await client.close()


@dataclass
class Publisher:
    """
    A thread that publishes ``{"c": channel, "n": n}`` to ``channel`` with
    ``publish()`` in a loop (n = 1, 2, ... for each attempt), and records
    what each attempt returned or raised, and when.
    """

    channel: str
    interval: float = 0.005
    #: (n, epoch, seq, when) of each publish that returned.
    stored: list[tuple[int, str, int, float]] = field(default_factory=list)
    #: (n, exception, when) of each publish that raised.
    failed: list[tuple[int, BaseException, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher")

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                event_id = publish(self.channel, message(self.channel, n))
            except BaseException as error:  # every kind is recorded, and checked
                self.failed.append((n, error, time.monotonic()))
            else:
                parsed = parse_event_id(event_id)
                assert parsed is not None
                epoch, seq = parsed.positions[channel_tag(self.channel)]
                self.stored.append((n, epoch, seq, time.monotonic()))
            self._stop.wait(self.interval)

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def stored_after(self, moment: float) -> list[tuple[int, str, int, float]]:
        return [item for item in list(self.stored) if item[3] > moment]

    def failed_after(self, moment: float) -> list[tuple[int, BaseException, float]]:
        return [item for item in list(self.failed) if item[2] > moment]


@dataclass
class Outage:
    """How a test fails the master that serves a channel."""

    #: Stop the replica (SIGSTOP) and cut its replication link: what the
    #: master acknowledges from now on is not replicated.
    pause_replica: Callable[[], None]
    #: SIGKILL the master.
    kill_master: Callable[[], None]
    #: Let the replica go on (SIGCONT), make it the master, wait until it
    #: is (blocking); return the new master's port.
    promote: Callable[[], int]
    #: SIGCONT the replica if it is stopped (after a failure).
    release: Callable[[], None]


def pause_replica(replica_pid: int, master_port: int) -> None:
    """
    SIGSTOP the replica, then cut its link on the master's side: a stopped
    process's kernel still receives what the master sends (and the replica
    would apply it after SIGCONT), a closed link receives nothing.
    """
    os.kill(replica_pid, signal.SIGSTOP)
    assert int(command(master_port, "CLIENT", "KILL", "TYPE", "replica")) == 1


def meta(port: int, channel: str) -> dict[str, str | None]:
    """The meta hash of ``channel`` on the server on ``port`` (its master)."""
    fields = ("e", "s", "b", "p")
    reply = command(port, "HMGET", f"sse_response:{{{channel}}}:meta", *fields)
    return dict(zip(fields, reply, strict=True))


@dataclass
class FailoverReport:
    """What :func:`fail_over_while_publishing` measured."""

    #: From the promotion (``wait_failover`` returning) to the first
    #: publish stored and the first event received in the new epoch
    #: (negative: before the wait returned).
    first_publish: float
    first_event: float
    failures: int
    lost: int


async def fail_over_while_publishing(
    serve: Serve, backend: BaseBackend, channel: str, other: str, outage: Outage
) -> FailoverReport:
    """
    The scenario of the issue: streams of ``channel`` (and of ``other``,
    served by another master, or by the same Redis), a thread publishing to
    ``channel`` in a loop; the replica paused, events acknowledged by the
    master and never replicated, the master killed, the replica promoted.
    """
    tag = channel_tag(channel)
    async with clients() as opened:
        both = await Client.open(serve, [channel, other], "asgi")
        opened.append(both)
        alone = await Client.open(serve, [channel], "wsgi")
        opened.append(alone)
        await attached(backend, 2)
        others: list[int] = []
        maybe: set[int] = set()  # published to other, and raised
        try:
            with Publisher(channel) as publisher:
                await until(lambda: len(publisher.stored) >= 40, DEADLINE, "40 events")
                old_epoch = publisher.stored[0][1]
                for n in range(1, 6):
                    await apublish(other, message(other, n))
                    others.append(n)
                # Replication stops here: what follows is acknowledged, then lost.
                await asyncio.to_thread(outage.pause_replica)
                cut = time.monotonic()
                await until(
                    lambda: len(publisher.stored_after(cut)) >= 10,
                    DEADLINE,
                    "10 events acknowledged by the master alone",
                )
                beyond = publisher.stored_after(cut)[9][2]
                for client in (both, alone):
                    await until(
                        client.reaches(channel, (old_epoch, beyond)),
                        DEADLINE,
                        "the streams to get them",
                    )
                await asyncio.to_thread(outage.kill_master)
                killed = time.monotonic()
                # The other channel, meanwhile: stored, or BroadcastError (a
                # cluster refuses every slot once it sees a master failed).
                for n in range(6, 9):
                    try:
                        await apublish(other, message(other, n))
                    except BroadcastError:
                        maybe.add(n)
                    else:
                        others.append(n)
                await until(
                    lambda: len(publisher.failed_after(killed)) >= 3,
                    DEADLINE,
                    "publish() to fail while no master serves the channel",
                )
                new_port = await asyncio.to_thread(outage.promote)
                promoted = time.monotonic()

                def in_new_epoch() -> list[tuple[int, str, int, float]]:
                    return [s for s in publisher.stored if s[1] != old_epoch]

                await until(
                    in_new_epoch, FLOWING_AGAIN_WITHIN, "a publish to be stored again"
                )
                first_stored = in_new_epoch()[0][3]
                got_again = await until(
                    lambda: any(e != old_epoch for e, _, _ in both.on(channel)),
                    FLOWING_AGAIN_WITHIN,
                    "the stream to get events again",
                )
                await until(
                    lambda: len(in_new_epoch()) >= 20, DEADLINE, "20 more events"
                )
            for n in range(9, 14):
                await apublish(other, message(other, n))
                others.append(n)
        finally:
            outage.release()

        # Where the new master took the channel up: after its last
        # replicated event, in a new epoch that continues the old one.
        after = meta(new_port, channel)
        base = int(after["b"] or 0)
        new_epoch = after["e"]
        assert after["p"] == old_epoch, (after, old_epoch)
        assert new_epoch not in (None, old_epoch), (after, old_epoch)
        last = int(after["s"] or 0)
        stored = {(epoch, seq): n for n, epoch, seq, _ in publisher.stored}
        failed_ns = {n for n, _, _ in publisher.failed}
        lost = [seq for epoch, seq in stored if epoch == old_epoch and seq > base]
        assert base >= 30, after  # replicated: the 40 waited for, about
        assert len(lost) >= 10, (base, lost)

        # publish() raised BroadcastError, and nothing else, ever.
        kinds = {type(error) for _, error, _ in publisher.failed}
        assert kinds == {BroadcastError}, publisher.failed[:5]
        # No publish stored an event under a number given already.
        assert len(stored) == len(publisher.stored)

        assert new_epoch is not None
        for client in (both, alone):
            await until(
                client.reaches(channel, (new_epoch, last)),
                DEADLINE,
                "every event of the new epoch",
            )
            timeline = client.timeline(channel)
            assert timeline.count(None) == 1, timeline
            at = timeline.index(None)
            before = [item for item in timeline[:at] if item is not None]
            later = [item for item in timeline[at + 1 :] if item is not None]
            # Before: the old epoch, 1 to beyond the base (the lost events
            # included), each the event stored under that number.
            seqs = [seq for _, seq, _ in before]
            assert seqs == list(range(1, len(seqs) + 1))
            assert len(seqs) > base
            for epoch, seq, n in before:
                assert epoch == old_epoch
                assert stored[(epoch, seq)] == n
            # The reset says the client stands at the base, in the new epoch.
            reset = next(e for e in client.events if e.type == "stream-reset")
            parsed = parse_event_id(reset.last_event_id)
            assert parsed is not None
            assert parsed.positions[tag] == (new_epoch, base)
            # After: the new epoch, from the base on, no gap, nothing twice;
            # every event stored is there (and those whose publish raised,
            # which may have been stored).
            assert [seq for _, seq, _ in later] == list(range(base + 1, last + 1))
            for epoch, seq, n in later:
                assert epoch == new_epoch
                assert stored.get((epoch, seq), n) == n
                assert (epoch, seq) in stored or n in failed_ns
            assert {(e, s) for (e, s) in stored if e == new_epoch} <= {
                (e, s) for e, s, _ in later
            }
        # The other channel went on, without a reset.
        await until(
            lambda: 13 in [n for _, _, n in both.on(other)],
            DEADLINE,
            "the other channel",
        )
        got_other = [n for _, _, n in both.on(other)]
        assert [n for n in got_other if n not in maybe] == others
        assert all(reset == [channel] for reset in both.resets())

        # A client that left before the lost events resumes with no reset
        # and nothing missing; one that had some of them is told.
        behind = format_event_id([old_epoch], [tag], [base - 5])
        resumed = await Client.open(serve, [channel], "asgi", behind)
        opened.append(resumed)
        ahead = format_event_id([old_epoch], [tag], [base + 3])
        told = await Client.open(serve, [channel], "asgi", ahead)
        opened.append(told)
        for client in (resumed, told):
            await until(
                client.reaches(channel, (new_epoch, last)),
                DEADLINE,
                "a resumed stream to catch up",
            )
        assert resumed.resets() == []
        assert [seq for _, seq, _ in resumed.on(channel)] == list(
            range(base - 4, last + 1)
        )
        # The replicated events it missed, under ids of the new epoch
        # (which holds them: it continues the old one up to the base).
        assert [(e, n) for e, _, n in resumed.on(channel)][:5] == [
            (new_epoch, stored[(old_epoch, seq)]) for seq in range(base - 4, base + 1)
        ]
        assert told.timeline(channel)[0] is None
        assert [seq for _, seq, _ in told.on(channel)] == list(
            range(base + 1, last + 1)
        )

    return FailoverReport(
        first_publish=first_stored - promoted,
        first_event=got_again - promoted,
        failures=len(publisher.failed),
        lost=len(lost),
    )


async def stream_of_nothing_there(
    serve: Serve, channel: str, backend: BaseBackend | None = None
) -> Client:
    """A stream of a backend whose Redis is not there: it ends with retry:."""
    began = time.monotonic()
    client = await Client.open(serve, [channel], backend=backend)
    await until(lambda: client.ended, CONNECT_WAIT + 5, "the stream to end")
    await client.close()
    assert client.events == []
    assert client.call.reading.parser.retry == 1000
    assert time.monotonic() - began < CONNECT_WAIT + 3
    return client


def publish_fails_quickly(channel: str, within: float) -> None:
    """publish() raises BroadcastError, and within ``within`` seconds."""
    began = time.monotonic()
    with pytest.raises(BroadcastError):
        publish(channel, message(channel, 1))
    assert time.monotonic() - began < within


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port where connections are accepted (the backlog) and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


# The cluster.


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """A cluster for the tests that leave it as it was."""
    with RedisClusterSet(tmp_path_factory.mktemp("cluster")) as cluster_set:
        yield cluster_set


def channels_by_master(
    cluster_set: RedisClusterSet, prefix: str, per_master: int
) -> dict[str, list[str]]:
    """``per_master`` channel names served by each master, by its node id."""
    found: dict[str, list[str]] = {role.id: [] for role in cluster_set.masters()}
    for number in range(1000):
        name = f"{prefix}{number}"
        names = found[cluster_set.master_for(name).id]
        if len(names) < per_master:
            names.append(name)
        if all(len(names) == per_master for names in found.values()):
            return found
    raise AssertionError(f"1000 names did not reach every master: {found}")


def cluster_setting(cluster_set: RedisClusterSet, **options: Any) -> dict[str, Any]:
    return redis_setting(cluster_set.seed_url, cluster=True, **options)


async def test_channels_on_every_master_in_one_stream_arrive_in_order_with_their_ids(
    cluster: RedisClusterSet, serve: Serve
) -> None:
    by_master = channels_by_master(cluster, "order-", 2)
    channels = [name for names in by_master.values() for name in names]
    with using(cluster_setting(cluster)) as backend:
        async with clients() as opened:
            opened += [
                await Client.open(serve, channels, protocol) for protocol in PROTOCOLS
            ]
            await attached(backend, 2)
            ids: dict[str, list[str]] = {channel: [] for channel in channels}
            for n in range(1, 21):
                for channel in channels:
                    ids[channel].append(await apublish(channel, message(channel, n)))
            for client in opened:
                await until(
                    lambda: len(client.events) == 20 * len(channels),  # noqa: B023
                    DEADLINE,
                    "20 events of each channel",
                )
                assert client.resets() == []
                for channel in channels:
                    got = client.on(channel)
                    assert [n for _, _, n in got] == list(range(1, 21))
                    # The position on the event's channel is the id publish() gave.
                    assert [
                        format_event_id([epoch], [channel_tag(channel)], [seq])
                        for epoch, seq, _ in got
                    ] == ids[channel]
                # The last id holds the position on every channel.
                assert {channel: client.position(channel) for channel in channels} == {
                    channel: parse_event_id(ids[channel][-1]).positions[  # type: ignore[union-attr]
                        channel_tag(channel)
                    ]
                    for channel in channels
                }
    # Each channel has its own epoch, and its keys are on its own master.
    for master_id, names in by_master.items():
        port = cluster.node(master_id).port
        for name in names:
            assert meta(port, name)["s"] == "20"


async def test_resume_after_a_disconnect_replays_what_was_missed_on_every_master(
    cluster: RedisClusterSet, serve: Serve
) -> None:
    channels = [
        names[0] for names in channels_by_master(cluster, "resume-", 1).values()
    ]
    with using(cluster_setting(cluster)) as backend:
        async with clients() as opened:
            first = await Client.open(serve, channels)
            opened.append(first)
            await attached(backend, 1)
            for n in range(1, 11):
                for channel in channels:
                    await apublish(channel, message(channel, n))
            await until(lambda: len(first.events) == 30, DEADLINE, "30 events")
            await first.close()
            left_at = first.events[-1].last_event_id
            for n in range(11, 26):  # missed
                for channel in channels:
                    await apublish(channel, message(channel, n))
            again = await Client.open(serve, channels, "wsgi", left_at)
            opened.append(again)
            await attached(backend, 1)
            for n in range(26, 31):  # live
                for channel in channels:
                    await apublish(channel, message(channel, n))
            await until(lambda: len(again.events) == 60, DEADLINE, "60 events")
            assert again.resets() == []
            for channel in channels:
                assert [n for _, _, n in again.on(channel)] == list(range(11, 31))
    # The same id, in another process (a new backend): the same replay.
    with using(cluster_setting(cluster)):
        async with clients() as opened:
            other = await Client.open(serve, channels, "asgi", left_at)
            opened.append(other)
            await until(lambda: len(other.events) == 60, DEADLINE, "60 events")
            assert other.resets() == []
            for channel in channels:
                assert [n for _, _, n in other.on(channel)] == list(range(11, 31))


async def test_one_pubsub_and_one_command_connection_per_master_none_on_replicas(
    cluster: RedisClusterSet, serve: Serve
) -> None:
    by_master = channels_by_master(cluster, "budget-", 5)
    channels = [name for names in by_master.values() for name in names]
    # A prefix of this test's own: the connections of the other tests'
    # backends (closed, but the servers may not have noticed yet) do not count.
    prefix = "budget"
    with using(cluster_setting(cluster, prefix=prefix)) as backend:
        async with clients() as opened:
            # 5 streams of one channel per master each, one of all 15.
            for index in range(5):
                picked = [names[index] for names in by_master.values()]
                opened.append(await Client.open(serve, picked))
            opened.append(await Client.open(serve, channels, "wsgi"))
            await attached(backend, 6)
            for channel in channels:
                await apublish(channel, message(channel, 1))
            await until(
                lambda: len(opened[-1].events) == 15, DEADLINE, "every channel's event"
            )
            name = f"{prefix}-{os.getpid()}"
            for role in cluster.masters():
                entries = cluster.client_list(role, name)
                assert sorted(e["name"] for e in entries) == [
                    f"{name}-cmd",
                    f"{name}-sub",
                ], role
                (sub,) = [e for e in entries if e["name"].endswith("-sub")]
                # Every channel of this master on the one PUB/SUB connection.
                assert int(sub["ssub"]) == len(by_master[role.id])
            for role in cluster.replicas():
                assert cluster.client_list(role, prefix) == [], role


def test_cross_process_clients_cut_off_and_reconnecting_get_every_event_once(
    cluster: RedisClusterSet,
    servers: list[Server],  # noqa: F811  (test_processes.py's fixture)
) -> None:
    """test_processes.py's test, on the cluster; then the budget per node."""
    service = RedisClusterService(cluster)
    lossless_resume_across_processes(service, servers)
    per_node = service.connections_by_node()
    for role in cluster.masters():
        kinds = collections.Counter(
            tuple(name.rsplit("-", 1)) for name in per_node[role.port]
        )
        # At most one connection of each kind per process on each master.
        assert set(kinds.values()) <= {1}, kinds
    # The three server processes listen to "orders" on its master (the
    # publisher process, gone, had only a command connection there).
    names = per_node[cluster.master_for("orders").port]
    assert sum(name.endswith("-sub") for name in names) == 3, names
    for role in cluster.replicas():
        assert per_node[role.port] == [], role


@pytest.fixture
def service(cluster: RedisClusterSet) -> RedisClusterService:
    """The service of the servers of test_processes.py: the cluster."""
    return RedisClusterService(cluster)


async def test_a_manual_failover_is_followed_and_loses_nothing(
    redis_cluster: RedisClusterSet, serve: Serve
) -> None:
    """
    A graceful failover (CLUSTER FAILOVER on the replica): the old master,
    alive, answers MOVED. A process that only publishes (no subscription
    tells it of the move) follows the redirection; the stream, in another
    backend, goes on in a new epoch that continues the old one, no reset.
    """
    (channel,) = channels_by_master(redis_cluster, "manual-", 1)[
        redis_cluster.masters()[0].id
    ]
    master = redis_cluster.master_for(channel)
    (replica,) = [r for r in redis_cluster.replicas() if r.master_id == master.id]
    setting = cluster_setting(redis_cluster)
    streams = load_backend(setting)
    try:
        with using(setting):
            async with clients() as opened:
                client = await Client.open(serve, [channel], backend=streams)
                opened.append(client)
                await attached(streams, 1)
                for n in range(1, 11):
                    await apublish(channel, message(channel, n))
                assert command(replica.port, "CLUSTER", "FAILOVER") == "OK"
                await asyncio.to_thread(
                    poll,
                    lambda: redis_cluster.master_for(channel).id == replica.id or None,
                    DEADLINE,
                    "the replica to take over",
                    redis_cluster.describe,
                )
                for n in range(11, 21):
                    # The old master answers MOVED: followed, not an error.
                    await apublish(channel, message(channel, n))
                await until(
                    lambda: len(client.on(channel)) == 20, DEADLINE, "the 20 events"
                )
                assert client.resets() == []
                got = client.on(channel)
                assert [n for _, _, n in got] == list(range(1, 21))
                assert [seq for _, seq, _ in got] == list(range(1, 21))
                # A new epoch from the 11th: it continues the old one.
                assert len({epoch for epoch, _, _ in got[:10]}) == 1
                assert got[10][0] != got[9][0]
                after = meta(replica.port, channel)
                assert (after["b"], after["p"]) == ("10", got[9][0])
                # The former master, a replica now, keeps no connection of
                # this process (neither backend's).
                name = f"sse_response-{os.getpid()}"
                await until(
                    lambda: redis_cluster.client_list(master, name) == [],
                    DEADLINE,
                    f"no connection on the former master: "
                    f"{redis_cluster.client_list(master, name)}",
                )
                assert command(master.port, "ROLE")[0] == "slave"
    finally:
        streams.close()


async def test_a_master_killed_mid_publish_while_its_replica_takes_over(
    redis_cluster: RedisClusterSet, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    masters = redis_cluster.masters()
    by_master = channels_by_master(redis_cluster, "failover-", 1)
    (channel,) = by_master[masters[0].id]
    (other,) = by_master[masters[1].id]
    master = redis_cluster.master_for(channel)
    (replica,) = [r for r in redis_cluster.replicas() if r.master_id == master.id]
    process = replica.node.server.process
    assert process is not None
    replica_pid = process.pid

    def promote() -> int:
        os.kill(replica_pid, signal.SIGCONT)
        # The master is dead: the replica takes its slots without its say.
        poll(
            lambda: command(replica.port, "CLUSTER", "FAILOVER", "TAKEOVER"),
            DEADLINE,
            "CLUSTER FAILOVER TAKEOVER",
            redis_cluster.describe,
        )
        role: NodeRole = redis_cluster.wait_failover(master)
        assert role.node is replica.node
        return role.port

    def kill_master() -> None:
        redis_cluster.kill(master)
        # As long as a real outage lasts: until the others see the master
        # failed (the node timeout), and the cluster refuses every slot.
        poll(
            lambda: (
                info_field(
                    str(command(masters[1].port, "CLUSTER", "INFO")), "cluster_state"
                )
                == "fail"
                or None
            ),
            DEADLINE,
            "the cluster to see its master failed",
            redis_cluster.describe,
        )

    outage = Outage(
        pause_replica=lambda: pause_replica(replica_pid, master.port),
        kill_master=kill_master,
        promote=promote,
        release=lambda: os.kill(replica_pid, signal.SIGCONT),
    )
    with using(cluster_setting(redis_cluster)) as backend:
        report = await fail_over_while_publishing(
            serve, backend, channel, other, outage
        )
    with capsys.disabled():
        print(
            f"\ncluster failover: {report.failures} publishes raised BroadcastError, "
            f"{report.lost} acknowledged events lost; after the promotion, first "
            f"publish stored {report.first_publish:+.2f} s, first event received "
            f"{report.first_event:+.2f} s"
        )
    assert report.first_publish < FLOWING_AGAIN_WITHIN
    assert report.first_event < FLOWING_AGAIN_WITHIN


async def nothing_there(serve: Serve, settings: list[dict[str, Any]]) -> None:
    """
    Streams of backends made of ``settings`` (whose servers are not there)
    end with retry:, together; publish() raises BroadcastError, quickly.
    """
    backends = [load_backend(setting) for setting in settings]
    try:
        streams = [
            asyncio.ensure_future(stream_of_nothing_there(serve, "x", backend))
            for backend in backends
        ]
        for setting in settings:
            with using(setting):
                timeout = setting["OPTIONS"]["socket_timeout"]
                await asyncio.to_thread(publish_fails_quickly, "x", timeout + 1.5)
        await asyncio.gather(*streams)
    finally:
        for backend in backends:
            backend.close()


async def test_a_cluster_that_is_not_there(serve: Serve) -> None:
    """
    Nothing listening, or a listener that never answers: streams end with
    retry: (once they waited CONNECT_WAIT for their subscription), and
    publish() raises BroadcastError within the socket timeout.
    """
    nothing = f"redis://127.0.0.1:{free_port()}/0"
    with silent_listener() as port:
        silent = f"redis://127.0.0.1:{port}/0"
        await nothing_there(
            serve,
            [
                redis_setting(location, cluster=True, socket_timeout=1)
                for location in (nothing, [silent])
            ],
        )
