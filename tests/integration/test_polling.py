"""
The README's polling source (a sync generator that queries the database,
sleeps, and yields IDLE when nothing is new) gives back its thread and its
database connection within one poll interval of its client leaving, even
though it never sends anything meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx
import pytest

from tests.integration.clients import Reports, Stream, token, wait_for
from tests.integration.conftest import ServerFactory
from tests.integration.servers import Server

#: Seconds between two rounds of the polling source.
INTERVAL = 0.5
CLIENTS = 50
#: What the measurement itself may add to one poll interval: the server
#: hearing of 50 disconnects, 50 threads ending, and the status requests.
SLACK = 0.25


def status(client: httpx.Client, server: Server) -> dict[str, Any]:
    response = client.get(server.url("/status/"))
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    result["own_threads"] = result["threads"] - result["pool_threads"]
    return result


@pytest.mark.parametrize("server_name", ["uvicorn-h11", "hypercorn", "daphne"])
@pytest.mark.timeout(90)
def test_polling_sources_are_gone_within_one_interval_of_their_clients(
    start_server: ServerFactory,
    tmp_path_factory: pytest.TempPathFactory,
    server_name: str,
    figures: list[tuple[str, str]],
) -> None:
    database = tmp_path_factory.mktemp("database") / "poll.sqlite3"
    server = start_server.start(
        server_name, env={"SSE_IT_DATABASE": str(database)}, streams=CLIENTS
    )
    reports = Reports(server.state)
    limits = httpx.Limits(max_connections=CLIENTS + 10)
    with httpx.Client(limits=limits) as client, contextlib.ExitStack() as streams:
        before = status(client, server)
        tokens = [token() for _ in range(CLIENTS)]
        opened = [
            streams.enter_context(
                Stream(client, server.url(f"/poll/?token={t}&interval={INTERVAL}"))
            )
            for t in tokens
        ]
        for stream in opened:
            assert stream.next_event().data == "hello"
        # Every source has run a query: each holds a thread and a connection.
        during = wait_for(
            lambda: (s := status(client, server))["database_fds"] >= CLIENTS and s,
            10,
            "every source to hold a database connection",
        )
        assert during["pump_threads"] == CLIENTS
        left_at = time.monotonic()
        streams.close()

        def settled() -> dict[str, Any] | None:
            now = status(client, server)
            back = (
                now["own_threads"] <= before["own_threads"]
                and now["pump_threads"] == 0
                and now["database_fds"] == before["database_fds"]
            )
            return now if back else None

        try:
            after = wait_for(settled, 10, "threads and connections to go")
        except AssertionError:
            raise AssertionError(
                f"before {before}, during {during}, after {status(client, server)}"
            ) from None
        took = time.monotonic() - left_at
    for t in tokens:
        assert reports.finally_(t) is not None
    figures.append(
        (
            f"{CLIENTS} polling clients leave {server_name:18}",
            f"threads {before['own_threads']}->{during['own_threads']}->"
            f"{after['own_threads']}, database fds {before['database_fds']}->"
            f"{during['database_fds']}->{after['database_fds']}, back in "
            f"{took:.2f} s (poll interval {INTERVAL} s)",
        )
    )
    assert took <= INTERVAL + SLACK
