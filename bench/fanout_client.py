"""
The fan-out load client: one process holds many subscriber connections on
raw asyncio sockets (uvloop when installed) and, for every event, notes how
long after its publishing (the ``at`` in its data, ``time.time()``) it
arrived.

    python fanout_client.py PORT PATH CONNECTIONS EVENTS OUT [FIRST]

A ``{i}`` in PATH becomes each connection's number, FIRST (default 0) for
the first connection, FIRST + 1 for the next, and so on: one channel per
connection (bench/channels.py).

It prints ``ready`` once every connection is made and its request sent, then
reads until every connection has EVENTS events (or 300 s pass). With EVENTS
0, it holds the connections until its stdin closes or a line on it gives the
total of events expected over all its connections: then it reads until they
have that many (or QUIET seconds pass without one).
It writes to OUT, as JSON, the connections that failed and, per event
number, the latencies in milliseconds (rounded to 0.01 ms) of every
connection that got it, when each event was published, how many events each
connection got (``counts``, in connection order) and when it started to
connect (``connect_started``, ``time.time()``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

from client import install_fast_loop, raise_fd_limit

_AT = re.compile(rb'"n": ?(\d+), ?"at": ?([0-9.]+)')
DEADLINE = 300.0

#: When each event was published (the ``at`` in its data), by number.
ats: dict[int, float] = {}
#: Once events flow, the client gives up after this many seconds without one
#: (a peer that loses events would otherwise be waited for until DEADLINE).
QUIET = 20.0
last_receipt = 0.0
#: Events received over all connections, and the total awaited (hold mode).
received = 0
expected: asyncio.Future[None] | None = None
expected_total = 0


class Subscriber(asyncio.Protocol):
    def __init__(
        self,
        request: bytes,
        events: int,
        latencies: dict[int, list[float]],
        head: asyncio.Future[None],
        done: asyncio.Future[None],
    ) -> None:
        self.request = request
        self.wanted = events
        self.got = 0
        self.latencies = latencies
        self.head = head
        self.done = done
        self.buffer = b""
        self.headed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        global last_receipt, received
        now = last_receipt = time.time()
        if not self.headed:
            self.headed = True
            if not self.head.done():
                self.head.set_result(None)
        buffer = self.buffer + data
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self.buffer = buffer
            return
        self.buffer = buffer[end + 2 :]
        for n, at in _AT.findall(buffer, 0, end):
            number, published = int(n), float(at)
            self.latencies.setdefault(number, []).append(
                round((now - published) * 1000, 2)
            )
            ats[number] = published
            self.got += 1
            received += 1
        if expected is not None and received >= expected_total and not expected.done():
            expected.set_result(None)
        if self.got >= self.wanted and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.head, self.done):
            if not future.done():
                future.set_exception(ConnectionError(str(exc or "closed")))


async def main(
    port: int, path: str, connections: int, events: int, first: int = 0
) -> dict[str, object]:
    global expected, expected_total
    loop = asyncio.get_running_loop()
    latencies: dict[int, list[float]] = {}
    ats.clear()
    heads, dones, transports = [], [], []
    subscribers: list[Subscriber | None] = [None] * connections
    failed = 0
    semaphore = asyncio.Semaphore(200)
    connect_started = time.time()

    async def connect(k: int) -> None:
        nonlocal failed
        head, done = loop.create_future(), loop.create_future()
        target = path.replace("{i}", str(first + k))
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        subscriber = Subscriber(request.encode(), events, latencies, head, done)
        async with semaphore:
            try:
                transport, _ = await loop.create_connection(
                    lambda: subscriber, "127.0.0.1", port
                )
            except OSError:
                failed += 1
                return
        subscribers[k] = subscriber
        transports.append(transport)
        heads.append(head)
        dones.append(done)

    await asyncio.gather(*(connect(k) for k in range(connections)))
    # Connected and asked: whether each stream is open and subscribed, the
    # orchestrator asks the server.
    print("ready", flush=True)
    if events == 0:
        # Hold the streams until told: stdin closes, or says how many events
        # to wait for.
        line = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if line:
            expected_total = int(line)
            expected = loop.create_future()
            if received >= expected_total:
                expected.set_result(None)
            told = time.time()
            deadline = time.monotonic() + DEADLINE
            while not expected.done() and time.monotonic() < deadline:
                await asyncio.wait([expected], timeout=1.0)
                if time.time() - max(last_receipt, told) > QUIET:
                    break
    elif dones:
        deadline = time.monotonic() + DEADLINE
        pending = set(dones)
        while pending and time.monotonic() < deadline:
            _done, pending = await asyncio.wait(pending, timeout=1.0)
            if last_receipt and time.time() - last_receipt > QUIET:
                break
    missing = sum(
        1 for done in dones if not done.done() or done.exception() is not None
    )
    # Nobody waits on these any more: closing must not make them errors.
    for future in (*heads, *dones):
        if not future.done():
            future.cancel()
    for transport in transports:
        transport.abort()
    return {
        "failed": failed,
        "incomplete": missing,
        "latencies": latencies,
        "ats": ats,
        "counts": [s.got if s is not None else 0 for s in subscribers],
        "connect_started": connect_started,
    }


if __name__ == "__main__":
    raise_fd_limit()
    install_fast_loop()
    port, path, connections, events, out = sys.argv[1:6]
    first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    result = asyncio.run(main(int(port), path, int(connections), int(events), first))
    with open(out, "w") as file:
        json.dump(result, file)
