"""
Real servers serving the test project, each started as a process of its own
on 127.0.0.1 with a free port, and the settings the tests use for each of
them (those docs/deployment.md recommends).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.polling import wait_until_answers

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ASGI_APP = "tests.integration.project.asgi:application"
WSGI_APP = "tests.integration.project.wsgi:application"
GUNICORN_CONF = "python:tests.integration.project.gunicorn_conf"

#: The graceful shutdown timeout every server is started with, in seconds.
GRACEFUL_TIMEOUT = 3
#: How long a server may take to answer its first request.
START_TIMEOUT = 30.0


def _gunicorn(port: int, *options: str, app: str = WSGI_APP) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        *options,
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
        "--config",
        GUNICORN_CONF,
        app,
    ]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    interface: Literal["asgi", "wsgi"]
    #: The command line, given the port and how many streams it must hold.
    argv: Callable[[int, int], list[str]]

    @property
    def asgi(self) -> bool:
        return self.interface == "asgi"


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in [
        ServerSpec(
            "uvicorn-h11",
            "asgi",
            lambda port, streams: [
                str(BIN / "uvicorn"),
                ASGI_APP,
                "--host=127.0.0.1",
                f"--port={port}",
                "--http=h11",
                f"--timeout-graceful-shutdown={GRACEFUL_TIMEOUT}",
                "--no-access-log",
            ],
        ),
        ServerSpec(
            "uvicorn-httptools",
            "asgi",
            lambda port, streams: [
                str(BIN / "uvicorn"),
                ASGI_APP,
                "--host=127.0.0.1",
                f"--port={port}",
                "--http=httptools",
                f"--timeout-graceful-shutdown={GRACEFUL_TIMEOUT}",
                "--no-access-log",
            ],
        ),
        ServerSpec(
            "daphne",
            "asgi",
            lambda port, streams: [
                str(BIN / "daphne"),
                "--bind=127.0.0.1",
                f"--port={port}",
                f"--application-close-timeout={GRACEFUL_TIMEOUT}",
                "--verbosity=1",
                ASGI_APP,
            ],
        ),
        ServerSpec(
            "hypercorn",
            "asgi",
            lambda port, streams: [
                str(BIN / "hypercorn"),
                f"--bind=127.0.0.1:{port}",
                f"--graceful-timeout={GRACEFUL_TIMEOUT}",
                ASGI_APP,
            ],
        ),
        ServerSpec(
            "gunicorn-sync",
            "wsgi",
            # One process per stream; --timeout=0, since a sync worker does
            # not report to the master while it streams.
            lambda port, streams: _gunicorn(
                port,
                "--worker-class=sync",
                f"--workers={streams}",
                "--timeout=0",
                "--preload",
            ),
        ),
        ServerSpec(
            "gunicorn-gthread",
            "wsgi",
            lambda port, streams: _gunicorn(
                port,
                "--worker-class=gthread",
                "--workers=1",
                f"--threads={max(64, streams)}",
            ),
        ),
        ServerSpec(
            "gunicorn-uvicorn",
            "asgi",
            lambda port, streams: _gunicorn(
                port,
                "--worker-class=uvicorn.workers.UvicornWorker",
                "--workers=1",
                app=ASGI_APP,
            ),
        ),
        ServerSpec(
            "runserver",
            "wsgi",
            lambda port, streams: [
                sys.executable,
                "-m",
                "django",
                "runserver",
                f"127.0.0.1:{port}",
                "--noreload",
                "--settings=tests.integration.project.settings_runserver",
            ],
        ),
    ]
}

ASGI_SERVERS = [name for name, spec in SERVERS.items() if spec.asgi]
WSGI_SERVERS = [name for name, spec in SERVERS.items() if not spec.asgi]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One server process; use it as a context manager."""

    spec: ServerSpec
    state: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    #: How many streams it must hold at once (for the servers that care).
    streams: int = 16
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "tests.integration.project.settings",
            "SSE_IT_STATE": str(self.state),
            **({"SSE_IT_ASGI": "1"} if self.spec.asgi else {}),
            **self.env,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.spec.argv(self.port, self.streams),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        wait_until_answers(
            self.url("/plain/"), self.process, START_TIMEOUT, self.log_text
        )

    @property
    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Stop the server, at once if it does not stop gracefully, and no orphans."""
        process = self.process
        if process is None:
            return
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(GRACEFUL_TIMEOUT + 5)
        finally:
            # Whatever happened, nothing of the group outlives the test.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""
