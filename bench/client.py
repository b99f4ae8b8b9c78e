"""
A low-overhead SSE client: raw asyncio sockets (uvloop when installed), no
HTTP library. It counts event ends (a blank line, ``\\n\\n``) in the raw
bytes as they arrive, which is all the benchmark needs to know.

Counting in the raw bytes is exact for this workload: every server sends
whole events per chunk, so chunked transfer framing (``\\r\\n<hex>\\r\\n``)
never sits inside an event's ``\\n\\n``; a ``\\n\\n`` split across two reads
is caught by remembering whether the last read ended with ``\\n``.

Run as a script, ``python client.py hold ...`` opens many streams and holds
them open (the memory rows); the orchestrator starts several such processes
to hold 10,000 streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit; return it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def install_fast_loop() -> None:
    """Use uvloop when it is installed: less client overhead per read."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@dataclass
class StreamResult:
    """What one client connection saw; times are ``time.perf_counter()``."""

    started: float = 0.0
    first_event: float | None = None
    last_event: float | None = None
    events: int = 0
    nbytes: int = 0
    status: int | None = None
    error: str | None = None
    done: asyncio.Future[None] | None = field(default=None, repr=False)


class EventCounter(asyncio.Protocol):
    """Send one GET, then count event ends until ``expect`` or the end."""

    def __init__(self, request: bytes, result: StreamResult, expect: int) -> None:
        self.request = request
        self.result = result
        self.expect = expect
        self.transport: asyncio.Transport | None = None
        self._ended_with_lf = False
        self._first_reached: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        result = self.result
        if result.status is None:
            # The status line is in the first read on loopback.
            try:
                result.status = int(data[9:12])
            except ValueError:
                result.status = -1
        count = data.count(b"\n\n")
        if self._ended_with_lf and data[:1] == b"\n":
            count += 1
        self._ended_with_lf = data[-1:] == b"\n"
        result.nbytes += len(data)
        if count:
            now = time.perf_counter()
            if result.first_event is None:
                result.first_event = now
                if not self._first_reached.done():
                    self._first_reached.set_result(None)
            result.last_event = now
            result.events += count
            if result.events >= self.expect:
                self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.result.error is None:
            self.result.error = repr(exc)
        if not self._first_reached.done():
            self._first_reached.set_result(None)
        self._finish()

    def _finish(self) -> None:
        done = self.result.done
        if done is not None and not done.done():
            done.set_result(None)

    async def first_event(self) -> None:
        """Wait until the first event arrived or the connection ended."""
        await self._first_reached


def request_bytes(path: str, port: int) -> bytes:
    """A GET for ``path``; ``Connection: close`` so the end of the body is EOF."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


async def open_stream(
    port: int, path: str, expect: int
) -> tuple[EventCounter, StreamResult]:
    """Connect and send the request; the counter then runs on its own."""
    loop = asyncio.get_running_loop()
    result = StreamResult(done=loop.create_future())
    result.started = time.perf_counter()
    _transport, protocol = await loop.create_connection(
        lambda: EventCounter(request_bytes(path, port), result, expect), HOST, port
    )
    return protocol, result


async def read_stream(
    port: int, path: str, expect: int, timeout: float
) -> StreamResult:
    """Read one stream until ``expect`` events, its end, or ``timeout``."""
    try:
        protocol, result = await asyncio.wait_for(
            open_stream(port, path, expect), timeout
        )
    except (OSError, asyncio.TimeoutError) as exc:
        return StreamResult(error=repr(exc))
    assert result.done is not None
    try:
        await asyncio.wait_for(asyncio.shield(result.done), timeout)
    except asyncio.TimeoutError:
        result.error = result.error or "timeout"
    finally:
        if protocol.transport is not None:
            protocol.transport.close()
    return result


async def hold(port: int, path: str, count: int, concurrency: int, timeout: float):
    """Open ``count`` streams, wait for each one's first event, keep them open."""
    gate = asyncio.Semaphore(concurrency)
    counters: list[EventCounter] = []
    errors: list[str] = []

    async def one() -> None:
        async with gate:
            try:
                protocol, result = await asyncio.wait_for(
                    open_stream(port, path, 1 << 30), timeout
                )
                counters.append(protocol)
                await asyncio.wait_for(protocol.first_event(), timeout)
                if result.first_event is None or result.status != 200:
                    errors.append(result.error or f"status {result.status}")
            except (OSError, asyncio.TimeoutError) as exc:
                errors.append(repr(exc))

    await asyncio.gather(*(one() for _ in range(count)))
    return counters, errors


async def _hold_main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    counters, errors = await hold(
        args.port, args.path, args.count, args.concurrency, args.timeout
    )
    print(
        json.dumps(
            {
                "open": len(counters) - len(errors),
                "errors": len(errors),
                "first_errors": sorted(set(errors))[:3],
                "seconds": time.perf_counter() - started,
            }
        ),
        flush=True,
    )
    # Hold until the orchestrator says so (a line, or EOF), bounded in time.
    loop = asyncio.get_running_loop()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(
            loop.run_in_executor(None, sys.stdin.readline), args.hold_seconds
        )
    for counter in counters:
        if counter.transport is not None:
            counter.transport.abort()


def main() -> None:
    """``python client.py hold --port P --path /x --count N``."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    hold_parser = sub.add_parser("hold", help="open and hold many streams")
    hold_parser.add_argument("--port", type=int, required=True)
    hold_parser.add_argument("--path", required=True)
    hold_parser.add_argument("--count", type=int, required=True)
    hold_parser.add_argument("--concurrency", type=int, default=200)
    hold_parser.add_argument("--timeout", type=float, default=60.0)
    hold_parser.add_argument("--hold-seconds", type=float, default=120.0)
    args = parser.parse_args()
    raise_fd_limit()
    install_fast_loop()
    asyncio.run(_hold_main(args))


if __name__ == "__main__":
    main()
