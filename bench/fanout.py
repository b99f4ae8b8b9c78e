"""
Fan-out: one channel, one server process (uvicorn with uvloop and httptools),
1,000 and 10,000 subscribers, every published event carrying its time of
publishing. See bench/README.md, "Fan-out".

    python bench/fanout.py                       # raw floor, memory, Redis; 1k and 10k
    python bench/fanout.py --subscribers 1000    # one size only
    python bench/fanout.py publish URL FIRST COUNT INTERVAL   # the Redis publisher
    python bench/fanout.py merge A.json B.json ...             # several runs as one

Writes bench/results/fanout.json and bench/results/fanout.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from client import raise_fd_limit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"

#: Events published 0.25 s apart: the latency figures.
PACED = 20
PACED_INTERVAL = 0.25
#: Events published back to back after them: the delivered events/s.
BURST = 100
#: Streams per load-client process.
PER_CLIENT = 5000


def project_env(**extra: str) -> dict[str, str]:
    """
    The environment of a process running the bench project: the apps, then
    this tree's sse_response (ahead of an editable install of another tree).
    """
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(APPS), str(REPO)]),
        "DJANGO_SETTINGS_MODULE": "djproject.settings",
        **extra,
    }


def setup_django() -> None:
    """Set up the bench project in this process (a publisher), as project_env."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")
    # bench/ itself would shadow Django Channels' package with channels.py,
    # for the Channels rows' publishers of this script and of channels.py.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path[:0] = [str(APPS), str(REPO)]
    import django

    django.setup()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank), nan if none."""
    return values[min(len(values) - 1, int(len(values) * q))] if values else math.nan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextlib.contextmanager
def redis_server(scratch: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """A ``redis-server`` on a free port, its files in ``scratch``; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(scratch),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


@contextlib.contextmanager
def postgres_server(python: str) -> Iterator[Any]:
    """A PostgreSQL server (the tests' own), migrated for the bench project."""
    sys.path.insert(0, str(BENCH.parent))
    from tests.broadcast.postgres_server import PostgresServer

    server = PostgresServer()
    try:
        server.start()
        subprocess.run(
            [python, "-m", "django", "migrate", "sse_response", "-v", "0"],
            cwd=APPS,
            env=project_env(BENCH_DATABASE=json.dumps(server.settings)),
            check=True,
            timeout=120,
        )
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def uvicorn(
    python: str,
    scratch: Path,
    env: dict[str, str],
    app: str = "djproject.asgi:application",
    lifespan: str = "off",
) -> Iterator[tuple[int, int]]:
    """A uvicorn process serving ``app`` (the bench project); yields (port, pid)."""
    port = free_port()
    log = (scratch / "server.log").open("ab")
    process = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
            "--lifespan",
            lifespan,
        ],
        cwd=APPS,
        env=project_env(**env),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, 30)
        yield port, process.pid
    finally:
        stop(process)
        log.close()


def get(port: int, path: str, timeout: float = 120) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return str(r.read().decode())


def start_clients(
    python: str,
    port: int,
    path: str,
    count: int,
    events: int,
    scratch: Path,
    first: int = 0,
) -> list[tuple[subprocess.Popen[str], Path]]:
    """
    Start load clients holding ``count`` streams of ``path``, PER_CLIENT a
    process; a ``{i}`` in ``path`` becomes each stream's number, from
    ``first`` on. Return once every client has made its connections.
    """
    clients = []
    for index in range(0, count, PER_CLIENT):
        out = scratch / f"client-{first + index}.json"
        process = subprocess.Popen(
            [
                python,
                str(BENCH / "fanout_client.py"),
                str(port),
                path,
                str(min(PER_CLIENT, count - index)),
                str(events),
                str(out),
                str(first + index),
            ],
            cwd=BENCH,
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        clients.append((process, out))
    for process, _ in clients:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a client did not get ready: {line!r}")
    return clients


class NotCounted(RuntimeError):
    """The streams were not all counted in time; ``seen`` were."""

    def __init__(self, message: str, seen: int) -> None:
        super().__init__(message)
        self.seen = seen


def wait_until(
    ports: int | Sequence[int],
    path: str,
    count: int,
    timeout: float = 120,
    interval: float = 0.2,
    stall: float | None = None,
) -> float:
    """
    Wait until the servers' ``path`` counts ``count`` streams (summed over
    the servers on ``ports``), asking every ``interval`` seconds; return the
    ``time.time()`` of the answer that did. Raise :class:`NotCounted` after
    ``timeout`` seconds, or after ``stall`` seconds without the count growing.
    """
    ports = [ports] if isinstance(ports, int) else list(ports)
    deadline = time.monotonic() + timeout
    said = 0.0
    best, grew = -1, time.monotonic()
    while (seen := sum(int(get(port, path)) for port in ports)) < count:
        now = time.monotonic()
        if seen > best:
            best, grew = seen, now
        if now - said >= 1.0:
            said = now
            print(
                f"fanout: {path} counts {seen} of {count}", file=sys.stderr, flush=True
            )
        if now > deadline:
            raise NotCounted(f"{count} streams never counted by {path}", seen)
        if stall is not None and now - grew > stall:
            raise NotCounted(
                f"{path} stuck at {seen} of {count} streams for {stall:g} s", seen
            )
        time.sleep(interval)
    return time.time()


def release(clients: list[tuple[subprocess.Popen[str], Path]]) -> None:
    """Let holding clients close their streams and exit."""
    for process, _ in clients:
        assert process.stdin is not None
        process.stdin.close()
    for process, _ in clients:
        process.wait(120)


def idle_rss_per_stream(python: str, count: int, scratch: Path) -> float:
    """Bytes of RSS per open plain (idle) stream, in a fresh server."""
    with uvicorn(python, scratch, {}) as (port, pid):
        warm_up(python, port, "/fanout/idle/", scratch)
        before = rss(pid)
        clients = start_clients(python, port, "/fanout/idle/", count, 0, scratch)
        wait_until(port, "/fanout/open/", count)
        time.sleep(1.0)
        after = rss(pid)
        release(clients)
    return (after - before) / count


def warm_up(
    python: str, port: int, path: str, scratch: Path, counted: str = "/fanout/open/"
) -> None:
    clients = start_clients(python, port, path, 20, 0, scratch)
    wait_until(port, counted, 20)
    release(clients)
    time.sleep(0.5)


def redis_connections(url: str, pid: int | None) -> int:
    """The server's connections (ours are named; a peer's: all but this one)."""
    import redis

    with redis.Redis.from_url(url) as client:
        entries = client.client_list()
        if pid is None:
            return len(entries) - 1
        return sum(
            1
            for entry in entries
            if str(entry.get("name", "")).startswith(f"sse_response-{pid}-")
        )


#: sse_response's rows.
OURS = ("memory", "redis", "postgres")

#: The peers' rows: the stream's path and the view that counts its streams.
PEERS = {
    "raw": ("/fanout/", "/fanout/count/"),
    "broadcaster": ("/fanout/", "/fanout/count/"),
    "eventstream": ("/eventstream/", "/fanout/eventstream-count/"),
    "channels": ("/fanout/", "/fanout/count/"),
    "channels-pubsub": ("/fanout/", "/fanout/count/"),
}

#: The rows whose publisher is a view of the server process: no outside service.
IN_PROCESS = ("memory", "raw")

#: The channel layer of each Channels row.
LAYERS = {"channels": "core", "channels-pubsub": "pubsub"}


def run_row(
    python: str, backend: str, count: int, scratch: Path, peer_python: str = ""
) -> dict[str, Any]:
    peer = backend in PEERS
    path, counted = PEERS.get(backend, ("/fanout/", "/fanout/open/"))
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        url = ""
        database = None
        if backend == "postgres":
            database = stack.enter_context(postgres_server(python))
            env["BENCH_DATABASE"] = json.dumps(database.settings)
        elif backend not in IN_PROCESS:
            url = stack.enter_context(redis_server(scratch))
            env["BENCH_REDIS_URL"] = url
        redis_port = url.rsplit(":", 1)[1].split("/")[0] if url else ""
        if backend == "raw":
            server = uvicorn(python, scratch, {}, "fanout_raw:app")
        elif backend == "eventstream":
            server = uvicorn(
                peer_python, scratch, {"BENCH_EVENTSTREAM_REDIS_PORT": redis_port}
            )
        elif backend == "broadcaster":
            server = uvicorn(
                peer_python, scratch, env, "fanout_broadcaster:app", lifespan="on"
            )
        elif backend in LAYERS:
            env["BENCH_CHANNELS_LAYER"] = LAYERS[backend]
            server = uvicorn(peer_python, scratch, env, "fanout_channels:application")
        else:
            server = uvicorn(python, scratch, env)
        port, pid = stack.enter_context(server)
        warm_up(python, port, path, scratch, counted=counted)
        before = rss(pid)
        clients = start_clients(python, port, path, count, PACED + BURST, scratch)
        wait_until(port, counted if peer else "/fanout/count/", count)
        time.sleep(1.0)
        rss_per_subscriber = (rss(pid) - before) / count
        connections = redis_connections(url, None if peer else pid) if url else 0
        if database is not None:
            connections = len(database.connections(f"sse_response-{pid}-"))
        phases = ((1, PACED, PACED_INTERVAL), (PACED + 1, BURST, 0.0))
        if backend == "eventstream":
            for first, number, interval in phases:
                subprocess.run(
                    [
                        peer_python,
                        str(Path(__file__)),
                        "publish-eventstream",
                        redis_port,
                        str(first),
                        str(number),
                        str(interval),
                    ],
                    check=True,
                    timeout=120,
                )
        elif backend == "broadcaster":
            for first, number, interval in phases:
                publish_raw(url, first, number, interval)
        elif backend in LAYERS:
            for first, number, interval in phases:
                subprocess.run(
                    [
                        peer_python,
                        str(Path(__file__)),
                        "publish-channels",
                        url,
                        LAYERS[backend],
                        str(first),
                        str(number),
                        str(interval),
                    ],
                    check=True,
                    timeout=300,
                )
        elif backend in IN_PROCESS:
            get(port, f"/fanout/publish/?count={PACED}&interval={PACED_INTERVAL}")
            get(port, f"/fanout/publish/?count={BURST}&interval=0&first={PACED + 1}")
        else:
            # Redis and PostgreSQL: the publisher is a process of its own.
            for first, number, interval in phases:
                subprocess.run(
                    [
                        python,
                        str(Path(__file__)),
                        "publish",
                        url or "postgres",
                        str(first),
                        str(number),
                        str(interval),
                    ],
                    check=True,
                    timeout=120,
                    env={**os.environ, **env},
                )
        results = []
        for process, out in clients:
            process.wait(400)
            results.append(json.loads(out.read_text()))
    return summarize(backend, count, results, rss_per_subscriber, connections)


def summarize(
    backend: str,
    count: int,
    results: list[dict[str, Any]],
    rss_per_subscriber: float,
    connections: int,
) -> dict[str, Any]:
    latencies: dict[int, list[float]] = {}
    ats: dict[int, float] = {}
    for result in results:
        for n, values in result["latencies"].items():
            latencies.setdefault(int(n), []).extend(values)
        for n, at in result.get("ats", {}).items():
            ats[int(n)] = at
    paced = sorted(v for n in range(1, PACED + 1) for v in latencies.get(n, []))
    last_subscriber = [max(latencies[n]) for n in range(1, PACED + 1) if n in latencies]
    burst_deliveries = sum(
        len(latencies.get(n, [])) for n in range(PACED + 1, PACED + BURST + 1)
    )
    first_at = ats.get(PACED + 1)
    last_receipt = max(
        (
            ats[n] + max(latencies[n]) / 1000
            for n in range(PACED + 1, PACED + BURST + 1)
            if n in latencies and n in ats
        ),
        default=None,
    )
    delivered = (
        burst_deliveries / (last_receipt - first_at)
        if first_at is not None and last_receipt
        else 0.0
    )

    return {
        "backend": backend,
        "subscribers": count,
        "p50_ms": percentile(paced, 0.50),
        "p99_ms": percentile(paced, 0.99),
        "max_ms": paced[-1] if paced else float("nan"),
        "last_subscriber_ms_median": statistics.median(last_subscriber)
        if last_subscriber
        else float("nan"),
        "delivered_per_s": delivered,
        "rss_per_subscriber_bytes": rss_per_subscriber,
        "redis_connections": connections,
        "failed": sum(r["failed"] for r in results),
        "incomplete": sum(r["incomplete"] for r in results),
        "expected_deliveries": count * (PACED + BURST),
        "deliveries": sum(len(v) for v in latencies.values()),
    }


def publish_main(url: str, first: int, count: int, interval: float) -> None:
    """The publisher in a process of its own (Redis and PostgreSQL rows)."""
    if url.startswith("redis"):
        os.environ["BENCH_REDIS_URL"] = url
    setup_django()
    from sse_response.broadcast import publish

    for n in range(first, first + count):
        publish("bench", {"data": {"n": n, "at": time.time()}})
        if interval:
            time.sleep(interval)


def publish_eventstream(port: str, first: int, count: int, interval: float) -> None:
    """django-eventstream's publisher: send_event, through its Redis mode."""
    os.environ["BENCH_EVENTSTREAM_REDIS_PORT"] = port
    setup_django()
    from django_eventstream import send_event

    for n in range(first, first + count):
        send_event("bench", "message", {"n": n, "at": time.time()})
        if interval:
            time.sleep(interval)


def publish_channels(
    url: str, layer: str, first: int, count: int, interval: float
) -> None:
    """Channels' publisher: group_send of SSE text, from a process of its own."""
    os.environ["BENCH_REDIS_URL"] = url
    os.environ["BENCH_CHANNELS_LAYER"] = layer
    setup_django()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    group_send = async_to_sync(get_channel_layer().group_send)
    for n in range(first, first + count):
        text = json.dumps({"n": n, "at": time.time()}, separators=(",", ":"))
        group_send("bench", {"type": "bench.event", "text": f"data: {text}\n\n"})
        if interval:
            time.sleep(interval)


def publish_raw(url: str, first: int, count: int, interval: float) -> None:
    """broadcaster's publisher: a Redis PUBLISH, what broadcaster listens to."""
    import redis

    with redis.Redis.from_url(url) as client:
        for n in range(first, first + count):
            text = json.dumps({"n": n, "at": time.time()}, separators=(",", ":"))
            client.publish("bench", text)
            if interval:
                time.sleep(interval)


def write(rows: list[dict[str, Any]], idle: dict[int, float]) -> None:
    RESULTS.mkdir(exist_ok=True)
    data = {
        "rows": rows,
        "idle_rss_per_stream": idle,
        "paced": PACED,
        "paced_interval": PACED_INTERVAL,
        "burst": BURST,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (RESULTS / "fanout.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "| backend | subscribers | p50 ms | p99 ms | max ms "
        "| last subscriber ms (median) "
        "| delivered events/s | RSS/subscriber KB | on top of a plain stream KB "
        "| Redis or PostgreSQL connections | lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        # A plain stream of sse_response: a baseline for sse_response's rows only.
        plain = idle.get(row["subscribers"]) if row["backend"] in OURS else None
        extra = (
            (row["rss_per_subscriber_bytes"] - plain) / 1024
            if plain is not None
            else float("nan")
        )
        lost = row["expected_deliveries"] - row["deliveries"]
        connections = "-" if row["backend"] in IN_PROCESS else row["redis_connections"]
        lines.append(
            f"| {row['backend']} | {row['subscribers']:,} | {row['p50_ms']:.0f} | "
            f"{row['p99_ms']:.0f} | {row['max_ms']:.0f} | "
            f"{row['last_subscriber_ms_median']:.0f} | {row['delivered_per_s']:,.0f} | "
            f"{row['rss_per_subscriber_bytes'] / 1024:.1f} | {extra:.1f} | "
            f"{connections} | "
            f"{lost} |"
        )
    (RESULTS / "fanout.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "fanout.svg").write_text(plot(rows))
    print("\n".join(lines))


def plot(rows: list[dict[str, Any]]) -> str:
    """Two bar charts, p99 latency and delivered events/s, as a plain SVG."""
    width, bar, gap, top = 360, 28, 14, 40
    charts = [
        ("p99 publish-to-receipt latency, ms", "p99_ms", "{:,.0f} ms"),
        ("delivered events/s (burst)", "delivered_per_s", "{:,.0f}"),
    ]
    height = top + len(rows) * (bar + gap) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * (width + 220)}" '
        f'height="{height}" font-family="sans-serif" font-size="12">'
    ]
    for chart, (title, key, text) in enumerate(charts):
        left = chart * (width + 220) + 150
        largest = max(float(row[key]) for row in rows) or 1.0
        parts.append(f'<text x="{left}" y="20" font-weight="bold">{title}</text>')
        for index, row in enumerate(rows):
            y = top + index * (bar + gap)
            length = width * float(row[key]) / largest
            label = f"{row['backend']}, {row['subscribers']:,}"
            colour = {
                "memory": "#2f6fdf",
                "redis": "#c63a3a",
                "postgres": "#336791",
            }.get(row["backend"], "#888888")
            parts.append(
                f'<text x="{left - 8}" y="{y + bar * 0.65}" text-anchor="end">'
                f"{label}</text>"
                f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" '
                f'fill="{colour}"/>'
                f'<text x="{left + length + 6:.1f}" y="{y + bar * 0.65}">'
                f"{text.format(float(row[key]))}</text>"
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def merge(paths: list[Path]) -> None:
    """Write the results of several runs (their fanout.json files) as one."""
    rows: list[dict[str, Any]] = []
    idle: dict[int, float] = {}
    for path in paths:
        data = json.loads(path.read_text())
        rows.extend(data["rows"])
        idle.update({int(k): v for k, v in data["idle_rss_per_stream"].items()})
    # The floor first, then ours, then the peers.
    order = list(dict.fromkeys(["raw", *OURS, *PEERS]))
    rows.sort(key=lambda row: (row["subscribers"], order.index(row["backend"])))
    write(rows, idle)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "publish":
        url, first, count, interval = sys.argv[2:6]
        publish_main(url, int(first), int(count), float(interval))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "merge":
        merge([Path(name) for name in sys.argv[2:]])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "publish-channels":
        url, layer, first, count, interval = sys.argv[2:7]
        publish_channels(url, layer, int(first), int(count), float(interval))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "publish-eventstream":
        port, first, count, interval = sys.argv[2:6]
        publish_eventstream(port, int(first), int(count), float(interval))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--backends", nargs="*", default=["raw", "memory", "redis"])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument(
        "--peer-python",
        default="",
        help="the interpreter of a venv with the peers (see bench/README.md)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    rows = []
    idle: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        scratch = Path(tmp)
        for count in args.subscribers:
            if set(args.backends) & {"memory", "redis"}:
                idle[count] = idle_rss_per_stream(args.python, count, scratch)
            for backend in args.backends:
                print(f"fanout: {backend}, {count} subscribers", flush=True)
                rows.append(
                    run_row(args.python, backend, count, scratch, args.peer_python)
                )
                print(json.dumps(rows[-1]), flush=True)
    write(rows, idle)


if __name__ == "__main__":
    main()
