"""
SIGTERM to a server holding open streams: it exits within 5 s, with the
``finally`` of every source run, under each server's usual graceful-timeout
setting (see servers.py and docs/deployment.md).
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.integration.clients import RawStream, Reports, token
from tests.integration.conftest import ServerFactory
from tests.integration.servers import SERVERS

STREAMS = 50
EXIT_WITHIN = 5.0


@pytest.mark.parametrize("name", list(SERVERS))
@pytest.mark.timeout(90)
def test_sigterm_ends_open_streams_and_exits(
    name: str, start_server: ServerFactory, figures: list[tuple[str, str]]
) -> None:
    server = start_server.start(name, streams=STREAMS)
    reports = Reports(server.state)
    tokens = [token() for _ in range(STREAMS)]
    clients: list[RawStream] = []
    try:
        for i, t in enumerate(tokens):
            # Half sync sources that yield every 0.2 s, half idle async ones.
            kind = "sync_iter" if i % 2 else "async_iter"
            path = f"/stream/{kind}/?token={t}&idle=1&interval=0.2"
            clients.append(RawStream(server.port, path))
        for client in clients:
            assert client.next_event().data == "1"
        assert not any(reports.finally_(t) for t in tokens)

        server.signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            server.wait(EXIT_WITHIN + 5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still runs {EXIT_WITHIN + 5} s after SIGTERM")
        took = time.monotonic() - started
    finally:
        for client in clients:
            client.close(reset=True)
    missing = [t for t in tokens if reports.finally_(t) is None]
    figures.append(
        (
            f"shutdown {name:18} {STREAMS} streams",
            f"exit after {took:.2f} s, {STREAMS - len(missing)}/{STREAMS} finally ran",
        )
    )
    assert took <= EXIT_WITHIN
    assert missing == []
