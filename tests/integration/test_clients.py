"""
Real clients agree: httpx-sse, sseclient-py and the eventsource npm package
read the same events from a stream of tricky data as the spec parser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import sseclient
from httpx_sse import connect_sse

from sse_response.testing import parse
from tests.integration.conftest import Served
from tests.integration.tricky import EVENT_TYPES, TRICKY_MESSAGES

NODE_CLIENT = Path(__file__).parent / "node"

Event = tuple[str, str, str]  # type, data, last event id

pytestmark = [
    pytest.mark.parametrize(
        "served", ["uvicorn-httptools", "gunicorn-gthread"], indirect=True
    ),
    pytest.mark.timeout(30),
]


@pytest.fixture(scope="module")
def expected(served: Served) -> list[Event]:
    """What the standard says a client reads from the stream."""
    response = httpx.get(served.url("/tricky/"), timeout=10)
    assert response.status_code == 200
    events = [(e.type, e.data, e.last_event_id) for e in parse(response.content)]
    assert len(events) == len(TRICKY_MESSAGES)
    for event, message in zip(events, TRICKY_MESSAGES, strict=True):
        data = message["data"]
        if isinstance(data, str):
            assert event[1] == data.replace("\r\n", "\n").replace("\r", "\n")
        assert event[0] == (message.get("event") or "message")
        assert event[2] == message["id"]
    return events


def test_httpx_sse_agrees(served: Served, expected: list[Event]) -> None:
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(client, "GET", served.url("/tricky/")) as source,
    ):
        events = [(e.event, e.data, e.id) for e in source.iter_sse()]
    assert events == expected


def test_sseclient_py_agrees(served: Served, expected: list[Event]) -> None:
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "GET", served.url("/tricky/"), headers={"Accept": "text/event-stream"}
        ) as response,
    ):
        client_events = list(sseclient.SSEClient(response.iter_bytes()).events())
    events = [(e.event, e.data, e.id) for e in client_events]
    assert events == expected


def test_eventsource_npm_agrees(served: Served, expected: list[Event]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: .ci/run installs it")
    if not (NODE_CLIENT / "node_modules" / "eventsource").is_dir():
        pytest.fail(f"the eventsource package is missing: run npm ci in {NODE_CLIENT}")
    result = subprocess.run(
        [
            node,
            "read-events.mjs",
            served.url("/tricky/"),
            str(len(expected)),
            *EVENT_TYPES,
        ],
        cwd=NODE_CLIENT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Split at LF only: a line may hold U+2028, which splitlines() splits at.
    lines = [json.loads(line) for line in result.stdout.split("\n") if line]
    events = [(e["type"], e["data"], e["id"]) for e in lines]
    assert events == expected
