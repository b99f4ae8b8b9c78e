"""
Many channels: N subscribers, each on a channel of its own (``u0`` to
``u<N-1>``), one uvicorn process (uvloop, httptools), and a publisher in
another process publishing to random channels at a fixed rate, every event
carrying its time of publishing. See bench/README.md, "Many channels".

    python bench/channels.py                          # memory, Redis, PostgreSQL,
                                                      # broadcaster; 1k and 5k
    python bench/channels.py --channels 20000 --workers 2 --rows redis
    python bench/channels.py --rows eventstream channels channels-pubsub redis-cluster
    python bench/channels.py merge A.json B.json ...  # several runs as one table
    python bench/channels.py publish KIND TARGET FIRST CHANNELS RATE SECONDS SEED NUMBER
    python bench/channels.py probe-cluster            # can the RedisBackend use one?

Writes bench/results/channels.json and bench/results/channels.md (another
place with ``--json``). The helpers (servers, clients, Redis, PostgreSQL)
are fanout.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import envs
from client import raise_fd_limit
from fanout import (
    APPS,
    PER_CLIENT,
    RESULTS,
    NotCounted,
    free_port,
    get,
    percentile,
    postgres_server,
    project_env,
    redis_server,
    setup_django,
    start_clients,
    stop,
    uvicorn,
    wait_until,
)

#: The rows, in the order of the table: sse_response's backends, then the peers.
#: For each: who serves it (``ours``: the main venv; ``peer``: the peers' venv),
#: the ASGI app, the stream's path (``{i}``: the channel's number), the view
#: that counts the subscribed streams, and the publisher's kind.
ROWS: dict[str, dict[str, str]] = {
    "memory": {
        "venv": "ours",
        "app": "djproject.asgi:application",
        "path": "/channels/{i}/",
        "count": "/fanout/count/",
        "publisher": "thread",
    },
    "redis": {
        "venv": "ours",
        "app": "djproject.asgi:application",
        "path": "/channels/{i}/",
        "count": "/fanout/count/",
        "publisher": "sse",
    },
    "redis-cluster": {
        "venv": "ours",
        "app": "djproject.asgi:application",
        "path": "/channels/{i}/",
        "count": "/fanout/count/",
        "publisher": "sse",
    },
    "postgres": {
        "venv": "ours",
        "app": "djproject.asgi:application",
        "path": "/channels/{i}/",
        "count": "/fanout/count/",
        "publisher": "sse",
    },
    "broadcaster": {
        "venv": "peer",
        "app": "fanout_broadcaster:app",
        "path": "/channels/{i}/",
        "count": "/fanout/count/",
        "publisher": "redis",
    },
    "eventstream": {
        "venv": "peer",
        "app": "djproject.asgi:application",
        "path": "/channels/eventstream/{i}/",
        "count": "/channels/eventstream-count/",
        "publisher": "eventstream",
    },
    "channels": {
        "venv": "peer",
        "app": "fanout_channels:application",
        "path": "/channels/{i}/",
        "count": "/fanout/count/",
        "publisher": "channels-core",
    },
    "channels-pubsub": {
        "venv": "peer",
        "app": "fanout_channels:application",
        "path": "/channels/{i}/",
        "count": "/fanout/count/",
        "publisher": "channels-pubsub",
    },
}
#: The reference row: Redis's CPU for a plain PUBLISH to a channel of one
#: subscriber, at the same rate.
BARE = "bare PUBLISH"
#: The row whose server CPU the others are compared with.
REFERENCE = "broadcaster"

#: Seconds allowed for every stream to be subscribed, and without one more.
SUBSCRIBE_TIMEOUT = 300.0
SUBSCRIBE_STALL = 15.0
#: How often the orchestrator asks the servers how many are subscribed.
POLL_INTERVAL = 0.05
#: Seconds a client waits past its last event for those still missing
#: (fanout_client.QUIET), and at most (fanout_client.DEADLINE).
CLIENT_WAIT = 20.0 + 300.0 + 60.0


# Measuring.


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds of ``pids`` and their live descendants (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After "(comm)": state, ppid, ... utime (14th field), stime (15th).
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    total = 0
    for pid in ticks:
        ancestor, hops = pid, 0
        while ancestor not in pids and ancestor > 1 and hops < 64:
            ancestor, hops = parents.get(ancestor, 0), hops + 1
        if ancestor in pids:
            total += ticks[pid]
    return total / tick


def redis_cpu(urls: list[str]) -> float:
    """used_cpu_sys + used_cpu_user of the Redis servers at ``urls``, summed."""
    import redis

    total = 0.0
    for url in urls:
        with redis.Redis.from_url(url) as client:
            info = client.info("cpu")
        total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    return total


def shares(count: int, workers: int) -> list[tuple[int, int]]:
    """The channels of each server: (first, how many), contiguous."""
    bounds = [count * w // workers for w in range(workers + 1)]
    return [(bounds[w], bounds[w + 1] - bounds[w]) for w in range(workers)]


# Services.


@contextlib.contextmanager
def redis_cluster(scratch: Path) -> Iterator[list[str]]:
    """
    A local Redis Cluster: six ``redis-server --cluster-enabled yes`` on free
    ports, made 3 masters with a replica each by ``redis-cli --cluster
    create``; yields the masters' URLs once every node says
    ``cluster_state:ok``.
    """
    import redis

    with contextlib.ExitStack() as stack:
        urls = []
        for k in range(6):
            node = scratch / f"cluster-{k}"
            node.mkdir(parents=True, exist_ok=True)
            urls.append(
                stack.enter_context(
                    redis_server(
                        node,
                        [
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            "nodes.conf",
                            "--cluster-node-timeout",
                            "5000",
                            # The bus defaults to the port + 10000: past
                            # 65535 for a high free port.
                            "--cluster-port",
                            str(free_port()),
                        ],
                    )
                )
            )
        addresses = [url.split("//", 1)[1].split("/", 1)[0] for url in urls]
        subprocess.run(
            [
                shutil.which("redis-cli") or "/usr/bin/redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        pending = list(urls)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no cluster_state:ok from {pending} in 60 s")
            with redis.Redis.from_url(pending[0]) as client:
                state = client.execute_command("CLUSTER INFO")
            if isinstance(state, bytes):
                state = state.decode()
            text = state if isinstance(state, str) else json.dumps(state)
            if "cluster_state:ok" in text or '"cluster_state": "ok"' in text:
                pending.pop(0)
            else:
                time.sleep(0.1)
        with redis.Redis.from_url(urls[0], decode_responses=True) as client:
            nodes = client.execute_command("CLUSTER NODES")
        if isinstance(nodes, dict):
            masters = [
                address.split("@")[0]
                for address, node in nodes.items()
                if "master" in node["flags"]
            ]
        else:
            masters = [
                line.split()[1].split("@")[0]
                for line in str(nodes).splitlines()
                if "master" in line.split()[2]
            ]
        yield [f"redis://{address}/0" for address in sorted(masters)]


def cluster_refusal(python: str, url: str) -> str:
    """
    Why the RedisBackend cannot use the cluster at ``url`` with
    ``OPTIONS["cluster"]``, or "" when it can: ``probe-cluster`` in a process
    of its own.
    """
    probe = subprocess.run(
        [python, str(Path(__file__)), "probe-cluster"],
        env=project_env(BENCH_REDIS_URL=url, BENCH_REDIS_CLUSTER="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode == 0:
        return ""
    lines = (probe.stdout + probe.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit status {probe.returncode}"


def probe_cluster() -> None:
    """
    With the bench settings (``BENCH_REDIS_CLUSTER`` set): Django's checks of
    the setting, then publish to 16 channels, whose keys fall in different
    slots, and so on different masters. Exit 1, saying why, when refused.
    """
    setup_django()
    try:
        from django.core.checks import Error, run_checks

        with contextlib.suppress(ImportError):
            import sse_response.checks  # noqa: F401  (registers the checks)
        errors = [m for m in run_checks() if isinstance(m, Error)]
        if errors:
            raise RuntimeError("; ".join(f"{m.id}: {m.msg}" for m in errors))
        from sse_response.broadcast import publish

        for n in range(16):
            publish(f"u{n}", {"data": "probe"})
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "))
        sys.exit(1)
    print("ok")


# Publishers.


def publisher_main(
    kind: str,
    target: str,
    first: int,
    channels: int,
    rate: float,
    seconds: float,
    seed: int,
    number: int,
) -> None:
    """
    A publisher process: says ``go`` on stdout just before its first publish,
    then the pacing result as one line of JSON. ``kind``: ``sse``
    (sse_response's ``publish()``, the backend the environment configures),
    ``redis`` (a plain PUBLISH to ``target``, what broadcaster listens to),
    ``eventstream`` (``send_event``, its Redis on port ``target``),
    ``channels-core`` or ``channels-pubsub`` (``group_send``, Redis
    ``target``).
    """
    sys.path.insert(0, str(APPS))
    import pacing

    plan = (first, channels, rate, seconds, seed, number)
    if kind == "sse":
        setup_django()
        from sse_response.broadcast import publish

        def one(channel: int, data: dict[str, Any]) -> None:
            publish(f"u{channel}", {"data": data})

        print("go", flush=True)
        result = pacing.run(one, *plan)
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(target)
        client.ping()

        def one(channel: int, data: dict[str, Any]) -> None:
            client.publish(f"u{channel}", json.dumps(data, separators=(",", ":")))

        print("go", flush=True)
        result = pacing.run(one, *plan)
        client.close()
    elif kind == "eventstream":
        os.environ["BENCH_EVENTSTREAM_REDIS_PORT"] = target
        setup_django()
        from django_eventstream import send_event

        def one(channel: int, data: dict[str, Any]) -> None:
            send_event(f"u{channel}", "message", data)

        print("go", flush=True)
        result = pacing.run(one, *plan)
    elif kind in ("channels-core", "channels-pubsub"):
        os.environ["BENCH_REDIS_URL"] = target
        os.environ["BENCH_CHANNELS_LAYER"] = kind.split("-")[1]
        setup_django()
        from channels.layers import get_channel_layer

        layer = get_channel_layer()

        async def aone(channel: int, data: dict[str, Any]) -> None:
            text = json.dumps(data, separators=(",", ":"))
            await layer.group_send(
                f"u{channel}", {"type": "bench.event", "text": f"data: {text}\n\n"}
            )

        async def publish_all() -> dict[str, Any]:
            print("go", flush=True)
            return await pacing.arun(aone, *plan)

        result = asyncio.run(publish_all())
    else:
        raise SystemExit(f"unknown publisher {kind!r}")
    print(json.dumps(result), flush=True)


class Publisher:
    """A publisher process (``publisher_main``), started and stopped."""

    def __init__(
        self,
        python: str,
        kind: str,
        target: str,
        plan: tuple[int, int, float, float, int, int],
        env: dict[str, str],
    ) -> None:
        self.process = subprocess.Popen(
            [python, str(Path(__file__)), "publish", kind, target, *map(str, plan)],
            stdout=subprocess.PIPE,
            text=True,
            env=project_env(**env),
            start_new_session=True,
        )

    def started(self) -> None:
        """Return once the publisher is about to publish its first event."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "go":
            self.process.wait(30)
            raise RuntimeError(f"the publisher did not start: {line!r}")

    def result(self, timeout: float) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=timeout)
        if self.process.returncode:
            raise RuntimeError(f"the publisher exited with {self.process.returncode}")
        return dict(json.loads(out.strip().splitlines()[-1]))

    def stop(self) -> None:
        stop(self.process)  # type: ignore[arg-type]


# The rows.


def bare_publish(
    python: str, rate: float, seconds: float, scratch: Path
) -> dict[str, Any]:
    """Redis's CPU per plain PUBLISH to a channel with one subscriber."""
    import redis

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(redis_server(scratch))
        port = url.rsplit(":", 1)[1].split("/")[0]
        subscriber = subprocess.Popen(
            [shutil.which("redis-cli") or "redis-cli", "-p", port, "subscribe", "u0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        stack.callback(stop, subscriber)
        deadline = time.monotonic() + 30
        with redis.Redis.from_url(url) as client:
            while dict(client.pubsub_numsub("u0")).get(b"u0", 0) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-cli never subscribed")
                time.sleep(0.05)
        publisher = Publisher(python, "redis", url, (0, 1, rate, seconds, 1, 1), {})
        stack.callback(publisher.stop)
        publisher.started()
        before = redis_cpu([url])
        result = publisher.result(seconds * 3 + 60)
        used = redis_cpu([url]) - before
    return {
        "row": BARE,
        "channels": 1,
        "published": result["published"],
        "publisher_late_ms_max": result["late_ms_max"],
        "redis_cpu_s": used,
        "redis_cpu_us_per_publish": used / max(1, result["published"]) * 1e6,
    }


def run_row(
    row: str, count: int, args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    spec = ROWS[row]
    scratch = scratch / f"{row}-{count}"
    scratch.mkdir(parents=True, exist_ok=True)
    python = args.python if spec["venv"] == "ours" else args.peer_python
    workers = args.workers
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        masters: list[str] = []
        url = ""
        if row == "postgres":
            database = stack.enter_context(postgres_server(args.python))
            env["BENCH_DATABASE"] = json.dumps(database.settings)
        elif row == "redis-cluster":
            masters = stack.enter_context(redis_cluster(scratch))
            url = masters[0]
            refusal = cluster_refusal(args.python, url)
            if refusal:
                print(
                    f"channels: redis-cluster skipped: the RedisBackend refuses "
                    f'OPTIONS {{"cluster": True}}: {refusal}',
                    flush=True,
                )
                return {"row": row, "channels": count, "skipped": refusal}
            env["BENCH_REDIS_URL"] = url
            env["BENCH_REDIS_CLUSTER"] = "1"
        elif row != "memory":
            url = stack.enter_context(redis_server(scratch))
            masters = [url]
            env["BENCH_REDIS_URL"] = url
        redis_port = url.rsplit(":", 1)[1].split("/")[0] if url else ""
        if row == "eventstream":
            env = {"BENCH_EVENTSTREAM_REDIS_PORT": redis_port}
        elif row.startswith("channels"):
            env["BENCH_CHANNELS_LAYER"] = spec["publisher"].split("-")[1]
        servers = [
            stack.enter_context(
                uvicorn(
                    python,
                    scratch,
                    env,
                    spec["app"],
                    lifespan="on" if row == "broadcaster" else "off",
                )
            )
            for _ in range(workers)
        ]
        ports = [port for port, _ in servers]
        pids = [pid for _, pid in servers]
        for port in ports:  # the app is loaded and answers
            get(port, spec["count"])

        # The subscribers: server w holds channels first..first+n-1.
        clients: list[tuple[subprocess.Popen[str], Path, int, int]] = []

        def end_clients() -> None:
            for process, *_ in clients:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)

        stack.callback(end_clients)
        for port, (first, n) in zip(ports, shares(count, workers), strict=True):
            started = start_clients(
                args.python, port, spec["path"], n, 0, scratch, first=first
            )
            for k, (process, out) in enumerate(started):
                start = first + k * PER_CLIENT
                clients.append(
                    (process, out, start, min(PER_CLIENT, first + n - start))
                )
        # Every client has made its connections and sent its requests.
        connected_at = time.time()
        subscribed = count
        try:
            subscribed_at: float | None = wait_until(
                ports,
                spec["count"],
                count,
                SUBSCRIBE_TIMEOUT,
                POLL_INTERVAL,
                SUBSCRIBE_STALL,
            )
        except NotCounted as exc:
            # A stream the server could not subscribe ends (a browser would
            # reconnect; this client does not): its events count as lost.
            print(f"channels: {row}: {exc}; publishing all the same", flush=True)
            subscribed_at, subscribed = None, exc.seen

        # The publishing window.
        rate, seconds = args.rate, args.seconds
        if spec["publisher"] == "thread":
            # MemoryBackend reaches its own process only: a thread of each
            # server publishes to that server's channels, at its share of
            # the rate.
            cpu_before = cpu_seconds(pids)
            redis_before = 0.0
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                futures = [
                    pool.submit(
                        get,
                        port,
                        f"/channels/publish/?first={first}&channels={n}"
                        f"&rate={rate / workers}&seconds={seconds}"
                        f"&seed={w + 1}&number={w * 1_000_000_000 + 1}",
                        seconds * 3 + 60,
                    )
                    for w, (port, (first, n)) in enumerate(
                        zip(ports, shares(count, workers), strict=True)
                    )
                ]
                results = [json.loads(f.result()) for f in futures]
        else:
            target = {"redis": url, "eventstream": redis_port}.get(
                spec["publisher"], url
            )
            kind = spec["publisher"]
            publisher_python = args.python if kind in ("sse", "redis") else python
            publisher = Publisher(
                publisher_python, kind, target, (0, count, rate, seconds, 1, 1), env
            )
            stack.callback(publisher.stop)
            publisher.started()
            cpu_before = cpu_seconds(pids)
            redis_before = redis_cpu(masters) if masters else 0.0
            results = [publisher.result(seconds * 3 + 60)]
        window_start = time.monotonic()
        published: dict[int, int] = {}
        for result in results:
            for channel, n in result["counts"].items():
                published[int(channel)] = published.get(int(channel), 0) + n

        # Every client waits for what was published to its channels.
        for process, _out, start, n in clients:
            assert process.stdin is not None
            wanted = sum(published.get(c, 0) for c in range(start, start + n))
            process.stdin.write(f"{wanted}\n")
            process.stdin.close()
        for process, *_ in clients:
            process.wait(CLIENT_WAIT)
        cpu_used = cpu_seconds(pids) - cpu_before
        redis_used = (redis_cpu(masters) - redis_before) if masters else math.nan
        window = time.monotonic() - window_start
        outs = [(json.loads(out.read_text()), start) for _, out, start, _n in clients]
    summary = summarize(
        row, count, workers, outs, published, results, subscribed_at, cpu_used,
        redis_used, window,
    )  # fmt: skip
    summary["subscribed"] = subscribed
    summary["gc_threshold"] = os.environ.get("BENCH_GC_THRESHOLD", "")
    summary["subscribed_after_connected_s"] = (
        None if subscribed_at is None else max(0.0, subscribed_at - connected_at)
    )
    return summary


def summarize(
    row: str,
    count: int,
    workers: int,
    outs: list[tuple[dict[str, Any], int]],
    published: dict[int, int],
    results: list[dict[str, Any]],
    subscribed_at: float | None,
    cpu_used: float,
    redis_used: float,
    window: float,
) -> dict[str, Any]:
    latencies = sorted(
        value
        for out, _start in outs
        for values in out["latencies"].values()
        for value in values
    )
    received: dict[int, int] = {}
    for out, start in outs:
        for k, n in enumerate(out["counts"]):
            received[start + k] = n
    lost = sum(max(0, n - received.get(c, 0)) for c, n in published.items())
    unexpected = sum(max(0, n - published.get(c, 0)) for c, n in received.items())
    deliveries = sum(received.values())
    total = sum(published.values())
    connect_started = min(out["connect_started"] for out, _ in outs)
    return {
        "row": row,
        "channels": count,
        "workers": workers,
        "subscribed_after_s": (
            subscribed_at - connect_started if subscribed_at is not None else None
        ),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else math.nan,
        "published": total,
        "deliveries": deliveries,
        "lost": lost,
        "unexpected": unexpected,
        "failed_connections": sum(out["failed"] for out, _ in outs),
        "publisher_late_ms_max": max(r["late_ms_max"] for r in results),
        "publish_seconds": max(r["seconds"] for r in results),
        "server_cpu_s": cpu_used,
        "server_cpu_us_per_delivery": cpu_used / max(1, deliveries) * 1e6,
        "redis_cpu_s": redis_used,
        "redis_cpu_us_per_publish": redis_used / max(1, total) * 1e6,
        "drain_s": window,
    }


# The results.


def write(data: dict[str, Any], path: Path) -> None:
    """``path`` (JSON) and the table beside it (.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    table = markdown(data)
    path.with_suffix(".md").write_text(table)
    print(table)


def markdown(data: dict[str, Any]) -> str:
    rows = data["rows"]
    bares = [r["redis_cpu_us_per_publish"] for r in rows if r["row"] == BARE]
    bare = statistics.median(bares) if bares else math.nan

    def reference(count: int, gc_threshold: str) -> float:
        # The peer's rows of the same size, with the same collector settings.
        values = [
            r["server_cpu_us_per_delivery"]
            for r in rows
            if r["row"] == REFERENCE
            and r["channels"] == count
            and r.get("gc_threshold", "") == gc_threshold
            and "skipped" not in r
        ]
        return statistics.median(values) if values else math.nan

    def number(value: float | None, digits: int = 0, suffix: str = "") -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:,.{digits}f}{suffix}"

    lines = [
        "| row | N | all subscribed after s: first / last connection "
        "| p50 ms | p99 ms | lost "
        "| server CPU µs/delivery | x broadcaster "
        "| Redis CPU µs/publish | x bare PUBLISH |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in rows:
        if r["row"] == BARE:
            lines.append(
                f"| {BARE} (1 channel, 1 subscriber) | - | - | - | - | - | - | - | "
                f"{number(r['redis_cpu_us_per_publish'], 1)} | 1.00 |"
            )
            continue
        if "skipped" in r:
            notes.append(
                f"{r['row']} at N = {r['channels']:,}: skipped, {r['skipped']}"
            )
            continue
        cpu = r["server_cpu_us_per_delivery"]
        redis_us = r["redis_cpu_us_per_publish"]
        lost = f"{r['lost']:,}"
        if r.get("unexpected"):
            lost += f" (+{r['unexpected']:,} unexpected)"
        after = number(r["subscribed_after_s"], 2)
        if "subscribed_after_connected_s" in r:  # not in the runs before it
            after += f" / {number(r['subscribed_after_connected_s'], 2)}"
        if r["subscribed_after_s"] is None:
            after = f"never ({r.get('subscribed', 0):,} of {r['channels']:,})"
        peer_cpu = reference(r["channels"], r.get("gc_threshold", ""))
        name = r["row"]
        if r.get("gc_threshold"):
            name += f" (gc {r['gc_threshold']})"
        lines.append(
            f"| {name} | {r['channels']:,} | "
            f"{after} | {number(r['p50_ms'], 1)} | "
            f"{number(r['p99_ms'], 1)} | {lost} | {number(cpu)} | "
            f"{number(cpu / peer_cpu, 2)} | {number(redis_us, 1)} | "
            f"{number(redis_us / bare, 1)} |"
        )
        if r["publisher_late_ms_max"] > 100:
            notes.append(
                f"{r['row']} at N = {r['channels']:,}: the publisher fell behind "
                f"(up to {r['publisher_late_ms_max']:,.0f} ms late; "
                f"{r['published']:,} events in {r['publish_seconds']:.1f} s)"
            )
    runs = "; ".join(
        f"{run['when']}: {run['rate']:,.0f} events/s for {run['seconds']:g} s, "
        f"{run['workers']} uvicorn process(es)"
        for run in data["runs"]
    )
    lines.append("")
    lines.append(f"Runs: {runs}.")
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def merge(paths: list[Path], out: Path) -> None:
    """Write the results of several runs (their JSON files) as one."""
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for path in paths:
        data = json.loads(path.read_text())
        rows.extend(data["rows"])
        runs.extend(data["runs"])
    order = [BARE, *ROWS]
    rows.sort(key=lambda r: (r["channels"] > 1, r["channels"], order.index(r["row"])))
    write({"rows": rows, "runs": runs}, out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "publish":
        kind, target, first, channels, rate, seconds, seed, number = sys.argv[2:10]
        publisher_main(
            kind, target, int(first), int(channels), float(rate), float(seconds),
            int(seed), int(number),
        )  # fmt: skip
        return
    if len(sys.argv) > 1 and sys.argv[1] == "probe-cluster":
        probe_cluster()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "merge":
        merge([Path(name) for name in sys.argv[2:]], RESULTS / "channels.json")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument(
        "--rows",
        nargs="*",
        default=["memory", "redis", "postgres", "broadcaster"],
        choices=list(ROWS),
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn processes (one port each)"
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument(
        "--peer-python",
        default="",
        help="the peers' interpreter; default: bench/.venv-peers (made by envs.py)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "channels.json")
    parser.add_argument(
        "--gc-threshold",
        default="",
        help="the servers' gc.set_threshold(), as t0,t1,t2 (default: Python's, "
        "700,10,10); kept with each row",
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        help="keep the servers' logs and the clients' results here (default: a "
        "temporary directory, removed at the end)",
    )
    args = parser.parse_args()
    if not args.peer_python and any(ROWS[r]["venv"] == "peer" for r in args.rows):
        args.peer_python = str(envs.ensure("peers"))
    raise_fd_limit()
    if args.gc_threshold:
        os.environ["BENCH_GC_THRESHOLD"] = args.gc_threshold
    runs = [
        {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "rate": args.rate,
            "seconds": args.seconds,
            "workers": args.workers,
        }
    ]
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        if args.scratch:
            scratch = args.scratch
            scratch.mkdir(parents=True, exist_ok=True)
        else:
            scratch = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="channels-"))
            )
        # The reference for every row on Redis (all but memory and postgres).
        if set(args.rows) - {"memory", "postgres"}:
            print(f"channels: {BARE}", flush=True)
            rows.append(bare_publish(args.python, args.rate, args.seconds, scratch))
            print(json.dumps(rows[-1]), flush=True)
        for count in args.channels:
            for row in args.rows:
                print(f"channels: {row}, {count:,} channels", flush=True)
                rows.append(run_row(row, count, args, scratch))
                print(json.dumps(rows[-1]), flush=True)
    write({"rows": rows, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
