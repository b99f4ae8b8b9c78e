"""
Behind nginx (Debian's), with the proxy settings docs/deployment.md gives
and nothing else, events arrive one by one, unbuffered.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.clients import Stream, token
from tests.integration.conftest import Served
from tests.integration.servers import free_port
from tests.polling import wait_until_answers

#: The location settings docs/deployment.md tells users to use.
PROXY_SETTINGS = """\
proxy_pass http://127.0.0.1:{upstream};
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $host;
"""

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        {listen}
        location / {{
            {location}
        }}
    }}
}}
"""


def nginx_config(tmp: Path, upstream: int, listen: str) -> str:
    """
    An nginx configuration that proxies to ``upstream`` with PROXY_SETTINGS,
    keeping its files in ``tmp``; ``listen`` holds the server's ``listen``
    (and TLS) directives.
    """
    return CONFIG.format(
        tmp=tmp,
        listen=listen.strip().replace("\n", "\n" + " " * 8),
        location=PROXY_SETTINGS.format(upstream=upstream)
        .strip()
        .replace("\n", "\n" + " " * 12),
    )


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail("nginx is missing: .ci/run installs Debian's nginx")
    return found


@pytest.fixture(scope="module")
def proxy(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx in front of the served project; yields its base URL."""
    tmp = tmp_path_factory.mktemp("nginx")
    port = free_port()
    config = tmp / "nginx.conf"
    config.write_text(
        nginx_config(tmp, served.server.port, f"listen 127.0.0.1:{port};")
    )
    with (tmp / "stderr.log").open("wb") as log:
        process = subprocess.Popen(
            [nginx_binary(), "-c", str(config), "-p", str(tmp)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_answers(base + "/plain/", process, 15, lambda: _log(tmp))
        yield base
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _log(tmp: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in tmp.glob("*.log") if path.is_file()
    )


pytestmark = [
    pytest.mark.parametrize(
        "served", ["uvicorn-httptools", "gunicorn-gthread"], indirect=True
    ),
    pytest.mark.parametrize("kind", ["sync_iter", "async_iter"]),
    pytest.mark.timeout(30),
]


def test_events_arrive_one_by_one_through_nginx(
    served: Served, proxy: str, kind: str
) -> None:
    t = token()
    url = f"{proxy}/stream/{kind}/?token={t}&count=4&hold=3"
    with httpx.Client() as client, Stream(client, url) as stream:
        assert stream.response.headers.get("x-accel-buffering") is None  # nginx ate it
        for n in (1, 2, 3):
            # Event n arrives while the source waits for us before event n + 1.
            assert stream.next_event().data == str(n)
            assert served.reports.finally_(t) is None
            served.reports.release(t, n)
        assert stream.next_event().data == "4"
        assert stream.rest() == []
    served.reports.wait_finally(t, 5)


def test_heartbeats_pass_through_nginx(served: Served, proxy: str, kind: str) -> None:
    t = token()
    url = f"{proxy}/stream/{kind}/?token={t}&count=2&hold=1&heartbeat=0.1"
    try:
        with httpx.Client() as client, Stream(client, url) as stream:
            assert stream.next_event().data == "1"
            assert set(stream.wait_comments(3)) == {""}
    finally:
        served.reports.release(t)
