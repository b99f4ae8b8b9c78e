"""
The figures measured against a running server, one function per figure.

All of them are bounded in count and in time; a figure that cannot be had
is returned with an ``error`` rather than raised, so one failing row never
costs the others their numbers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from client import open_stream, read_stream
from servers import BENCH, Server, venv_python

#: Events django-eventstream sends before any published one: a 2 KB padding
#: comment and a ``stream-open`` event.
_EVENTSTREAM_PREAMBLE = 2


def _query(path: str, **params: object) -> str:
    joiner = "&" if "?" in path else "?"
    return path + joiner + "&".join(f"{k}={v}" for k, v in params.items())


async def throughput(server: Server, n: int, timeout: float) -> dict[str, Any]:
    """
    One client reads ``n`` events sent as fast as the server can.

    The rate is events over the time from the request to the last event.
    The server's CPU time (its whole process tree) is read before and after.
    """
    cpu_before = server.cpu_seconds()
    client_cpu_before = time.process_time()
    if server.row.push:
        result = await _push_throughput(server, n, timeout)
    else:
        result = await _pull_throughput(server, n, timeout)
    result["server_cpu_s"] = server.cpu_seconds() - cpu_before
    result["client_cpu_s"] = time.process_time() - client_cpu_before
    if result["events"] and result.get("seconds"):
        result["rate"] = result["events"] / result["seconds"]
        result["cpu_us_per_event"] = result["server_cpu_s"] / result["events"] * 1e6
        result["client_busy"] = result["client_cpu_s"] / result["seconds"]
    return result


async def _pull_throughput(server: Server, n: int, timeout: float) -> dict[str, Any]:
    path = _query(server.row.path, mode="burst", n=n)
    res = await read_stream(server.port, path, n, timeout)
    out: dict[str, Any] = {"events": res.events, "expected": n, "error": res.error}
    if res.status != 200:
        out["error"] = res.error or f"status {res.status}"
    if res.last_event is not None:
        out["seconds"] = res.last_event - res.started
    if res.events >= n:
        out["error"] = None  # Closed by us after the last event: not an error.
    return out


async def _push_throughput(server: Server, n: int, timeout: float) -> dict[str, Any]:
    """django-eventstream: a listener, then a publisher calling send_event."""
    expect = n + _EVENTSTREAM_PREAMBLE
    protocol, res = await open_stream(server.port, server.row.path, expect)
    try:
        deadline = time.perf_counter() + timeout
        # The counter runs in a protocol callback; polling it is simplest.
        while res.events < _EVENTSTREAM_PREAMBLE and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        base = res.events
        started = time.perf_counter()
        publish = asyncio.create_task(
            read_stream(server.port, _query("/eventstream-publish/", n=n), 1, timeout)
        )
        # Events beyond 10 queued per listener are dropped, so the end is
        # either all n events, or a second without any after publishing.
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
            if res.events - base >= n:
                break
            idle = time.perf_counter() - (res.last_event or started)
            if publish.done() and idle > 1.0:
                break
        await publish
    finally:
        if protocol.transport is not None:
            protocol.transport.close()
    delivered = res.events - base
    out: dict[str, Any] = {"events": delivered, "expected": n, "lost": n - delivered}
    if delivered and res.last_event is not None:
        out["seconds"] = res.last_event - started
    out["error"] = None if delivered else "no event delivered"
    return out


async def first_event(server: Server, samples: int) -> dict[str, Any]:
    """Milliseconds from connecting to the first event, over fresh connections."""
    times: list[float] = []
    errors: list[str] = []
    for _ in range(samples):
        res = await read_stream(
            server.port, _query(server.row.path, mode="first"), 1, 5
        )
        if res.first_event is None or res.status != 200:
            errors.append(res.error or f"status {res.status}")
        else:
            times.append((res.first_event - res.started) * 1e3)
    return {"ms": times, "errors": len(errors), "first_errors": sorted(set(errors))[:3]}


async def cleanup(server: Server, samples: int) -> dict[str, Any]:
    """
    Milliseconds from the client closing its socket to the source's
    ``finally`` running in the server (the ``tick`` source logs it).
    """
    times: list[float] = []
    errors: list[str] = []
    log = server.cleanup_log
    for _ in range(samples):
        token = uuid.uuid4().hex
        path = _query(server.row.path, mode="tick", token=token)
        protocol, _res = await open_stream(server.port, path, 1 << 30)
        try:
            await asyncio.wait_for(protocol.first_event(), 5)
        except asyncio.TimeoutError:
            errors.append("no first event")
        await asyncio.sleep(0.02)  # Mid-way between two ticks.
        closed_at = time.monotonic()
        if protocol.transport is not None:
            protocol.transport.close()
        found = await _wait_for_token(log, token, timeout=3.0)
        if found is None:
            errors.append("no cleanup within 3 s")
        else:
            times.append((found - closed_at) * 1e3)
    return {"ms": times, "errors": len(errors), "first_errors": sorted(set(errors))[:3]}


async def _wait_for_token(log: Path, token: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    # A few lines in a small local file: reading it blocks for microseconds.
    while time.monotonic() < deadline:
        if log.exists():  # noqa: ASYNC240
            for line in log.read_text().splitlines():  # noqa: ASYNC240
                if line.startswith(token + " "):
                    return float(line.split()[1])
        await asyncio.sleep(0.002)
    return None


def hold_streams(server: Server, count: int, per_process: int = 5000) -> dict[str, Any]:
    """
    Open ``count`` streams from several client processes, wait until each
    got its first event, and read the serving process's RSS.

    RSS per stream is (RSS holding them - RSS before) / streams held; the
    baseline is taken after a few streams have come and gone, so imports
    and pools that the first request sets up are not counted.
    """
    worker = server.worker()
    asyncio.run(_warm(server))
    time.sleep(0.5)
    rss_before = worker.memory_info().rss
    processes = math.ceil(count / per_process)
    shares = [count // processes + (i < count % processes) for i in range(processes)]
    clients = [
        subprocess.Popen(
            [
                str(venv_python("main")),
                str(BENCH / "client.py"),
                "hold",
                "--port",
                str(server.port),
                "--path",
                _query(server.row.path, mode="hold"),
                "--count",
                str(share),
                "--timeout",
                "60",
                "--hold-seconds",
                "120",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        for share in shares
    ]
    reports: list[dict[str, Any]] = []
    try:
        for client in clients:
            assert client.stdout is not None
            line = client.stdout.readline()  # Bounded by the client's timeouts.
            reports.append(json.loads(line) if line else {"open": 0, "errors": 1})
        time.sleep(1.0)  # Let the server settle (buffers, lazy frees).
        rss_after = worker.memory_info().rss
    finally:
        for client in clients:
            _end_client(client)
    held = sum(r["open"] for r in reports)
    errors = sum(r["errors"] for r in reports)
    return {
        "streams": count,
        "held": held,
        "errors": errors,
        "first_errors": sorted({e for r in reports for e in r.get("first_errors", [])})[
            :3
        ],
        "client_processes": processes,
        "connect_seconds": max(r.get("seconds", 0) for r in reports),
        "rss_before": rss_before,
        "rss_after": rss_after,
        "kb_per_stream": (rss_after - rss_before) / held / 1024 if held else None,
    }


def _end_client(client: subprocess.Popen[str]) -> None:
    try:
        if client.stdin is not None:
            client.stdin.write("stop\n")
            client.stdin.close()
        client.wait(timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        client.kill()
        client.wait(timeout=5)


async def _warm(server: Server) -> None:
    path = _query(server.row.path, mode="hold")
    opened = [await open_stream(server.port, path, 1) for _ in range(20)]
    for protocol, res in opened:
        assert res.done is not None
        await asyncio.wait_for(asyncio.shield(res.done), 5)
        if protocol.transport is not None:
            protocol.transport.close()
    await asyncio.sleep(1.5)  # A held sync source notices within 1 s.


def run_encoders(venv: str) -> dict[str, Any]:
    """Run ``encoders.py`` in ``venv`` and return what it measured."""
    out = subprocess.run(
        [str(venv_python(venv)), str(BENCH / "encoders.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(out.stdout)


if __name__ == "__main__":
    sys.exit("measure.py is a module; run bench/run.py")
