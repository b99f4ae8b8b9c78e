"""
gunicorn's sync worker kills a request that outlasts ``--timeout``: the
master sends SIGABRT, and the worker's handler raises SystemExit wherever
the worker's thread is, which for a stream is inside the stream's own event
loop. The stream must then end quietly (no error from the library, only
gunicorn's own report of the abort) and its source's ``finally`` run.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.clients import Reports, Stream, token
from tests.integration.servers import Server, ServerSpec, _gunicorn

#: The worker timeout, in seconds (gunicorn's smallest useful one).
TIMEOUT = 2

SYNC_WORKER_WITH_TIMEOUT = ServerSpec(
    "gunicorn-sync-timeout",
    "wsgi",
    lambda port, streams: _gunicorn(
        port, "--worker-class=sync", "--workers=1", f"--timeout={TIMEOUT}"
    ),
)

#: What the library's cleanup printed before it handled SystemExit.
LIBRARY_ERRORS = [
    "RuntimeError",
    "aclose(): asynchronous generator is already running",
    "Event loop is closed",
    "no running event loop",
    "Exception ignored",
    "Task was destroyed",
    "never retrieved",
]


@pytest.mark.parametrize("kind", ["sync_iter", "async_iter"])
@pytest.mark.timeout(60)
def test_a_worker_timeout_ends_the_stream_quietly_and_runs_the_finally(
    kind: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("timeout")
    server = Server(SYNC_WORKER_WITH_TIMEOUT, state=base / "state", log=base / "log")
    t = token()
    with server, httpx.Client() as client:
        reports = Reports(server.state)
        path = f"/stream/{kind}/?token={t}&interval=0.05&heartbeat=0.5"
        with Stream(client, server.url(path), read_timeout=TIMEOUT * 10) as stream:
            stream.events(1)
            # The worker dies with the request: the body is cut short.
            with pytest.raises(httpx.RemoteProtocolError):
                stream.rest()
        ran = reports.finally_(t) or reports.wait_finally(t, 10)
        log = server.log_text()
    assert "WORKER TIMEOUT" in log
    assert [error for error in LIBRARY_ERRORS if error in log] == [], log
    # The one traceback left is gunicorn's own report of the request it
    # aborted ("Error handling request ... SystemExit: 1"), as for any view.
    assert log.count("Traceback") == 1, log
    assert "SystemExit: 1" in log
    assert ran.sent >= 1
