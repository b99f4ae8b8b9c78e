"""
The status line and headers of a stream reach the client at once on every
server, before any event or heartbeat, so that EventSource's ``onopen``
fires at once and a client's read timeout does not run out on an idle
stream.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.clients import token
from tests.integration.conftest import Served
from tests.integration.servers import SERVERS

#: The longest a client may wait for the headers of an idle stream.
HEADERS_WITHIN = 0.1


@pytest.mark.parametrize("served", list(SERVERS), indirect=True)
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.timeout(30)
def test_headers_arrive_at_once_on_an_idle_stream(
    served: Served, kind: str, figures: list[tuple[str, str]]
) -> None:
    t = token()
    # Warm the connection pool and the server's code paths: what is measured
    # is the stream, not the first connection.
    served.client.get(served.url("/plain/")).raise_for_status()
    try:
        started = time.perf_counter()
        # The default heartbeat is 15 s: a server that holds the headers
        # until the first chunk makes this read time out.
        with served.client.stream(
            "GET",
            served.url(f"/idle/{kind}/?token={t}"),
            headers={"Accept": "text/event-stream"},
            timeout=httpx.Timeout(10.0, read=2.0),
        ) as response:
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
    finally:
        served.reports.release(t)
    figures.append(
        (f"time to headers {served.spec.name:18} {kind}", f"{elapsed * 1000:.1f} ms")
    )
    assert elapsed <= HEADERS_WITHIN
