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
    # No configuration file: ending streams on shutdown needs none (the
    # explicit hook's file comes through EXPLICIT_SHUTDOWN's environment).
    return [
        str(BIN / "gunicorn"),
        *options,
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
        app,
    ]


#: The environment that makes each server use the explicit shutdown helpers,
#: which shutdown no longer needs, beside the automatic path.
EXPLICIT_SHUTDOWN = {
    "SSE_IT_EXPLICIT_SHUTDOWN": "1",
    "GUNICORN_CMD_ARGS": f"--config={GUNICORN_CONF}",
}
#: For runserver, whose explicit recipe is an application module of its own.
EXPLICIT_SHUTDOWN_RUNSERVER = {
    **EXPLICIT_SHUTDOWN,
    "DJANGO_SETTINGS_MODULE": "tests.integration.project.settings_runserver",
}


@dataclass(frozen=True)
class ServerSpec:
    name: str
    interface: Literal["asgi", "wsgi"]
    #: The command line, given the port and how many streams it must hold.
    argv: Callable[[int, int], list[str]]
    #: Environment variables it needs.
    env: dict[str, str] = field(default_factory=dict)
    #: Whether it restarts its application when a module it loaded changes.
    reloads: bool = False
    #: Whether its reloader kills the serving process at once on SIGTERM
    #: (Django's does), so SIGTERM must go to the serving process instead.
    reloader_kills_on_sigterm: bool = False

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
            ],
        ),
    ]
}


def _runserver(port: int, streams: int) -> list[str]:
    return [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}"]


#: More ways to serve, for the shutdown and reload tests: the development
#: servers with their autoreloader, and gunicorn's workers with and without
#: --preload (SERVERS' gunicorn-sync has it, the others not).
VARIANTS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in [
        ServerSpec(
            "uvicorn-reload",
            "asgi",
            lambda port, streams: [
                *SERVERS["uvicorn-h11"].argv(port, streams),
                "--reload",
            ],
            reloads=True,
        ),
        ServerSpec(
            "runserver-reload",
            "wsgi",
            _runserver,
            reloads=True,
            reloader_kills_on_sigterm=True,
        ),
        ServerSpec(
            "daphne-runserver",
            "asgi",
            _runserver,
            env={"DJANGO_SETTINGS_MODULE": "tests.integration.project.settings_daphne"},
            reloads=True,
            reloader_kills_on_sigterm=True,
        ),
        ServerSpec(
            # Serving in its own process, not a child it spawns, which it
            # would tell to stop through a multiprocessing event, not a signal.
            "hypercorn-workers0",
            "asgi",
            lambda port, streams: [
                *SERVERS["hypercorn"].argv(port, streams),
                "--workers=0",
            ],
        ),
        ServerSpec(
            "gunicorn-sync-nopreload",
            "wsgi",
            lambda port, streams: [
                arg
                for arg in SERVERS["gunicorn-sync"].argv(port, streams)
                if arg != "--preload"
            ],
        ),
        ServerSpec(
            "gunicorn-gthread-preload",
            "wsgi",
            lambda port, streams: _gunicorn(
                port,
                "--worker-class=gthread",
                "--workers=1",
                f"--threads={max(64, streams)}",
                "--preload",
            ),
        ),
        ServerSpec(
            "gunicorn-uvicorn-preload",
            "asgi",
            lambda port, streams: _gunicorn(
                port,
                "--worker-class=uvicorn.workers.UvicornWorker",
                "--workers=1",
                "--preload",
                app=ASGI_APP,
            ),
        ),
    ]
}


def spec_named(name: str) -> ServerSpec:
    """The server of SERVERS or VARIANTS called ``name``."""
    return SERVERS.get(name) or VARIANTS[name]


ASGI_SERVERS = [name for name, spec in SERVERS.items() if spec.asgi]
WSGI_SERVERS = [name for name, spec in SERVERS.items() if not spec.asgi]


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports of 127.0.0.1 (all held until all are chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


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
            **self.spec.env,
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

    def signal_group(self, signum: int) -> None:
        """Signal every process of the server, as a terminal's Ctrl-C does."""
        os.killpg(self.pid, signum)

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
