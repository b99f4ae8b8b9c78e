"""
What one broadcast operation costs on each backend: ``publish()`` from one
thread (events/s), and a stream resuming after 1,000 missed events (time, and
round trips to the backend). See bench/README.md, "Broadcast operations".

    python bench/broadcast_ops.py                  # memory, Redis and PostgreSQL
    python bench/broadcast_ops.py --backends postgres

Each backend runs in a process of its own, against a real redis-server or
PostgreSQL (Debian's) started for the run on 127.0.0.1. Writes
bench/results/broadcast_ops.json and bench/results/broadcast_ops.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

#: Events published per run, runs per backend (the median is quoted).
PUBLISHES = 5000
RUNS = 5
#: Events a resuming stream has missed.
MISSED = 1000


@contextlib.contextmanager
def service(backend: str) -> Iterator[dict[str, Any]]:
    """The backend's setting, with its service started for the run."""
    sys.path.insert(0, str(REPO))
    if backend == "memory":
        yield {"BACKEND": "sse_response.broadcast.MemoryBackend"}
    elif backend == "redis":
        from tests.broadcast.redis_server import RedisServer

        with tempfile.TemporaryDirectory(prefix="bench-redis-") as scratch:
            server = RedisServer(Path(scratch))
            server.start()
            try:
                yield {
                    "BACKEND": "sse_response.broadcast.RedisBackend",
                    "LOCATION": server.url,
                }
            finally:
                server.kill()
    elif backend == "postgres":
        from tests.broadcast.postgres_server import PostgresServer

        postgres = PostgresServer()
        try:
            postgres.start()
            yield {
                "BACKEND": "sse_response.broadcast.PostgresBackend",
                "LOCATION": "default",
                "DATABASES": {"default": postgres.settings},
            }
        finally:
            postgres.remove()
    else:
        raise ValueError(backend)


def measure(backend: str) -> dict[str, Any]:
    """Run in the backend's own process: Django is set up once per process."""
    with service(backend) as setting:
        import django
        from django.conf import settings

        databases = setting.pop("DATABASES", {})
        settings.configure(
            INSTALLED_APPS=["sse_response"],
            DATABASES=databases,
            SSE_RESPONSE_BROADCAST={**setting, "OPTIONS": {"history": 2 * PUBLISHES}},
            USE_TZ=True,
        )
        django.setup()
        if databases:
            from django.core.management import call_command

            call_command("migrate", "sse_response", verbosity=0)

        from sse_response.broadcast import get_backend, publish

        rates = rounds(lambda run, n: publish(f"publish-{run}", {"data": {"n": n}}))
        floor = round_trip_floor(backend, setting)

        ids = [publish("replay", {"data": {"n": n}}) for n in range(MISSED + 1)]
        backend_object = get_backend()
        seconds, reads = asyncio.run(resume(backend_object, ids[0]))
        backend_object.close()
    return {
        "backend": backend,
        "publishes_per_s_median": statistics.median(rates),
        "publishes_per_s_runs": rates,
        "round_trips_per_s_median": statistics.median(floor) if floor else None,
        "resume_seconds": seconds,
        "resume_reads": reads,
        "missed": MISSED,
    }


def rounds(call: Callable[[int, int], object]) -> list[float]:
    """Calls per second of ``call(run, n)``, over ``RUNS`` runs of ``PUBLISHES``."""
    rates = []
    for run in range(RUNS):
        started = time.perf_counter()
        for n in range(PUBLISHES):
            call(run, n)
        rates.append(PUBLISHES / (time.perf_counter() - started))
    return rates


def round_trip_floor(backend: str, setting: dict[str, Any]) -> list[float]:
    """
    The service's bare round trips from one thread, with the client the
    backend uses (redis-py ``PING``; ``SELECT 1`` on Django's connection):
    the most that a ``publish()`` that waits for its reply can reach.
    """
    if backend == "redis":
        import redis

        with redis.Redis.from_url(setting["LOCATION"]) as client:
            return rounds(lambda run, n: client.ping())
    if backend == "postgres":
        from django.db import connection

        with connection.cursor() as cursor:
            return rounds(lambda run, n: cursor.execute("SELECT 1"))
    return []


async def resume(backend: Any, last_event_id: str) -> tuple[float, int]:
    """Time a stream that resumes 1,000 events behind; count its reads."""
    from sse_response.broadcast.stream import Subscription

    reads = 0
    read = backend.read

    async def counted(channel: str, after: int, limit: int) -> Any:
        nonlocal reads
        reads += 1
        return await read(channel, after, limit)

    backend.read = counted
    started = time.perf_counter()
    events = 0
    stream = Subscription(("replay",), backend).events(last_event_id)
    async for chunk in stream:
        events += bytes(chunk).count(b"\nid: ") + bytes(chunk).startswith(b"id: ")
        if events >= MISSED:
            break
    seconds = time.perf_counter() - started
    await stream.aclose()
    return seconds, reads


def write(rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(exist_ok=True)
    data = {
        "rows": rows,
        "publishes": PUBLISHES,
        "runs": RUNS,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (RESULTS / "broadcast_ops.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "| backend | publish() from one thread, events/s (median of 5) "
        "| bare round trips from one thread, /s (median of 5) "
        f"| resume after {MISSED:,} missed events | backend reads |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        floor = row.get("round_trips_per_s_median")
        lines.append(
            f"| {row['backend']} | {row['publishes_per_s_median']:,.0f} | "
            f"{'-' if floor is None else f'{floor:,.0f}'} | "
            f"{row['resume_seconds'] * 1000:.0f} ms | {row['resume_reads']} |"
        )
    (RESULTS / "broadcast_ops.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2])))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--backends", nargs="*", default=["memory", "redis", "postgres"]
    )
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    rows = []
    for backend in args.backends:
        print(f"broadcast_ops: {backend}", flush=True)
        result = subprocess.run(
            [args.python, str(Path(__file__)), "--one", backend],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
            cwd=REPO,
        )
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    write(rows)


if __name__ == "__main__":
    main()
