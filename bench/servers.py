"""
The rows of the benchmark, and starting and stopping their servers.

Every server listens on 127.0.0.1 on a free port, runs in a process group of
its own, and is stopped (SIGTERM, then SIGKILL) when its ``with`` block ends,
whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
APPS = BENCH / "apps"


@dataclass(frozen=True)
class Row:
    """One line of the results: a library, a source kind and a server."""

    key: str
    label: str
    venv: str  # "main" or "djblets": the venv the server runs in
    server: str  # "uvicorn" or "gunicorn"
    app: str  # the ASGI or WSGI application, module:attribute
    path: str  # the URL of the stream, without the query string
    #: django-eventstream: events are pushed with send_event, not yielded.
    push: bool = False
    #: Why a figure cannot be measured for this row, by figure.
    skip: tuple[tuple[str, str], ...] = ()
    #: Environment variables the server gets (the bench settings read them).
    env: tuple[tuple[str, str], ...] = ()

    def skip_reason(self, figure: str) -> str | None:
        """The reason ``figure`` is not measured for this row, if it is not."""
        return dict(self.skip).get(figure)


_ASGI_DJANGO = "djproject.asgi:application"
_WSGI_DJANGO = "djproject.wsgi:application"
_DJBLETS_BUFFERS = "Django collects a sync iterator into a list under ASGI"
_TIME = "left out to keep `make bench` under 10 minutes"
_THREADS = (
    "left out: 10,000 sync streams are 10,000 threads; opening them took over 2"
    " minutes here, past the 10-minute budget of `make bench`"
)
_PUSH = "events are pushed with send_event; see the throughput note"
#: The metrics rows: the same as their row without, with the sse_response app
#: installed and prometheus_client's metrics on (the bench settings read it).
_METRICS = (("BENCH_METRICS", "1"),)
_METRICS_ONLY = "the metrics rows measure the per-event cost; see their row without"

ROWS: tuple[Row, ...] = (
    Row(
        "raw",
        "raw ASGI, one send per event (limit)",
        "main",
        "uvicorn",
        "raw_asgi:app",
        "/stream/",
    ),
    Row(
        "plain",
        "Django StreamingHttpResponse, async gen of bytes",
        "main",
        "uvicorn",
        _ASGI_DJANGO,
        "/plain/",
    ),
    Row(
        "starlette",
        "sse-starlette EventSourceResponse, async gen",
        "main",
        "uvicorn",
        "starlette_app:app",
        "/stream/",
    ),
    Row(
        "djblets-asgi",
        "djblets, sync gen, uvicorn",
        "djblets",
        "uvicorn",
        _ASGI_DJANGO,
        "/djblets/",
        skip=(("cleanup", _DJBLETS_BUFFERS), ("rss", _DJBLETS_BUFFERS)),
    ),
    Row(
        "djblets-gthread",
        "djblets, sync gen, gunicorn gthread",
        "djblets",
        "gunicorn",
        _WSGI_DJANGO,
        "/djblets/",
    ),
    Row(
        "eventstream",
        "django-eventstream (in-process, no storage)",
        "main",
        "uvicorn",
        _ASGI_DJANGO,
        "/eventstream/?channel=bench",
        push=True,
        skip=(("ttfe", _PUSH), ("cleanup", _PUSH), ("rss-10000", _TIME)),
    ),
    Row(
        "sse-async-asgi",
        "sse_response, async source, uvicorn",
        "main",
        "uvicorn",
        _ASGI_DJANGO,
        "/sse-async/",
    ),
    Row(
        "sse-sync-asgi",
        "sse_response, sync source, uvicorn",
        "main",
        "uvicorn",
        _ASGI_DJANGO,
        "/sse-sync/",
        skip=(("rss-10000", _THREADS),),
    ),
    Row(
        "sse-sync-gthread",
        "sse_response, sync source, gunicorn gthread",
        "main",
        "gunicorn",
        _WSGI_DJANGO,
        "/sse-sync/",
    ),
    Row(
        "sse-async-gthread",
        "sse_response, async source, gunicorn gthread",
        "main",
        "gunicorn",
        _WSGI_DJANGO,
        "/sse-async/",
    ),
    Row(
        "sse-async-asgi-metrics",
        "sse_response, async source, uvicorn, Prometheus metrics on",
        "main",
        "uvicorn",
        _ASGI_DJANGO,
        "/sse-async/",
        skip=(("rss", _METRICS_ONLY),),
        env=_METRICS,
    ),
    Row(
        "sse-sync-asgi-metrics",
        "sse_response, sync source, uvicorn, Prometheus metrics on",
        "main",
        "uvicorn",
        _ASGI_DJANGO,
        "/sse-sync/",
        skip=(("rss", _METRICS_ONLY),),
        env=_METRICS,
    ),
)


def venv_python(venv: str) -> Path:
    """The interpreter of the bench venv named ``venv``."""
    return BENCH / f".venv-{venv}" / "bin" / "python"


def free_port() -> int:
    """A port nobody listens on right now (the server binds it just after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(row: Row, port: int) -> list[str]:
    python = str(venv_python(row.venv))
    if row.server == "uvicorn":
        # uvicorn picks uvloop and httptools when installed ([standard]).
        return [
            python,
            "-m",
            "uvicorn",
            row.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
            "--lifespan",
            "off",
        ]
    return [
        python,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        "32",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--timeout",
        "120",
        "--backlog",
        "4096",
        row.app,
    ]


@dataclass
class Server:
    """A running server: its port and its process tree."""

    row: Row
    port: int
    process: subprocess.Popen[bytes]
    cleanup_log: Path

    def processes(self) -> list[psutil.Process]:
        """The server process and its children (gunicorn's worker)."""
        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the whole process tree."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def worker(self) -> psutil.Process:
        """The process that serves requests (gunicorn: its one worker)."""
        procs = self.processes()
        return procs[-1] if self.row.server == "gunicorn" else procs[0]


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on {port} in {timeout} s")


@contextlib.contextmanager
def running(row: Row, scratch: Path) -> Iterator[Server]:
    """Start ``row``'s server, yield it once it listens, and always stop it."""
    port = free_port()
    cleanup_log = scratch / f"cleanup-{row.key}.log"
    cleanup_log.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(APPS),
        DJANGO_SETTINGS_MODULE="djproject.settings",
        BENCH_CLEANUP_LOG=str(cleanup_log),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(dict(row.env))
    log = open(scratch / f"server-{row.key}.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        _command(row, port),
        cwd=APPS,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        _wait_listening(port, process, timeout=30)
        if row.server == "gunicorn":
            time.sleep(0.3)  # The master listens before its worker is ready.
        yield Server(row, port, process, cleanup_log)
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server's whole process group: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
