"""
Shutdown and reload with open streams, with nothing opted in: the test
project installs the ``sse_response`` app and serves Django's own ASGI and
WSGI applications, with no wrapper, hook or configuration file.

SIGTERM, SIGINT or a code change, with 50 open streams (half sync sources,
half async): every stream ends with its ``retry:`` hint, every source's
``finally`` runs, and the server exits (or serves again, reloaded) within
2 s of the signal plus what the server takes by itself with no stream open,
measured first on the same server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.clients import RawStream, Reports, token
from tests.integration.conftest import ServerFactory
from tests.integration.servers import (
    EXPLICIT_SHUTDOWN,
    EXPLICIT_SHUTDOWN_RUNSERVER,
    SERVERS,
    VARIANTS,
    Server,
    spec_named,
)
from tests.polling import wait_for

STREAMS = 50
#: How long a server may take beyond what it takes with no stream open.
WITHIN = 2.0
#: How long anything here may take at all.
LIMIT = 30.0

ALL = [*SERVERS, *VARIANTS]
RELOADING = [name for name, spec in VARIANTS.items() if spec.reloads]
SIGINT_SERVERS = [
    "uvicorn-h11",
    "uvicorn-reload",
    "daphne",
    "hypercorn-workers0",
    "gunicorn-gthread",
    "gunicorn-uvicorn",
    "runserver",
    "runserver-reload",
    "daphne-runserver",
]
#: hypercorn tells the worker process it spawns to stop through a
#: multiprocessing event, not a signal, and ASGI tells the application
#: nothing: its streams are cut at --graceful-timeout, finally run but no
#: retry hint sent. ``--workers 0`` serves in the process that gets signals.
UNREACHABLE = {"hypercorn": "hypercorn's worker gets no signal (see above)"}

#: The time each server takes to exit (or reload) with no stream open.
_baselines: dict[tuple[str, str], float] = {}


def deliver(server: Server, signum: int) -> None:
    """
    Signal the server as its users do: a development server's whole process
    group (SIGINT is a terminal's Ctrl-C), else the server's own process
    (``kill``; gunicorn's master passes SIGTERM on to its workers). Django's
    reloader kills the process that serves at once on SIGTERM, so that goes
    to the latter.
    """
    spec = server.spec
    if spec.reloader_kills_on_sigterm and signum == signal.SIGTERM:
        serving = pid(server)
        assert serving is not None
        os.kill(serving, signum)
    elif spec.reloads or signum == signal.SIGINT:
        server.signal_group(signum)
    else:
        server.signal(signum)


def time_exit(
    server: Server, signum: int, clients: list[RawStream] | None = None
) -> tuple[float, Readers | None]:
    deliver(server, signum)
    started = time.monotonic()
    readers = Readers(clients) if clients else None
    try:
        server.wait(LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{server.name} still runs {LIMIT} s after signal {signum}")
    return time.monotonic() - started, readers


def pid(server: Server) -> int | None:
    try:
        answer = httpx.get(server.url("/status/"), timeout=1.0)
    except httpx.TransportError:
        return None
    return int(answer.json()["pid"]) if answer.status_code == 200 else None


#: Seconds after which a change not yet followed by a reload is made again
#: (StatReloader looks every second).
REWRITE_AFTER = 3.0


def time_reload(
    server: Server, code: Path, clients: list[RawStream] | None = None
) -> tuple[float, Readers | None]:
    """Change the watched module; return when another process serves."""
    before = pid(server)
    module = code / "reloadme.py"
    module.write_text(f"CHANGED = {time.time()!r}\n")
    started = written = time.monotonic()
    readers = Readers(clients) if clients else None

    def reloaded() -> bool:
        nonlocal written
        now = pid(server)
        if now == before and time.monotonic() - written > REWRITE_AFTER:
            # A reloader that had not yet taken the file's first mtime when
            # it changed (a loaded machine) takes the new one as its start,
            # and never reloads: change it again while the old process runs.
            module.write_text(f"CHANGED = {time.time()!r}\n")
            written = time.monotonic()
        return now not in (None, before)

    wait_for(reloaded, LIMIT, "the reload")
    return time.monotonic() - started, readers


def start(
    factory: ServerFactory, name: str, code: Path, env: dict[str, str] | None = None
) -> Server:
    return factory.start(
        name,
        env={"SSE_IT_CODE": str(code), "UVICORN_RELOAD_DIRS": str(code), **(env or {})},
        streams=STREAMS,
    )


#: Make the server exit or reload; return how long that took, and the readers
#: of ``clients`` (None without clients).
Act = Callable[[Server, "list[RawStream] | None"], "tuple[float, Readers | None]"]


def baseline(
    factory: ServerFactory, name: str, what: str, code: Path, act: Act
) -> float:
    key = (name, what)
    if key not in _baselines:
        server = start(factory, name, code)
        assert pid(server) is not None  # one plain request first
        _baselines[key] = act(server, None)[0]
        factory.stop_all()
    return _baselines[key]


def shut_down_with_open_streams(
    factory: ServerFactory,
    name: str,
    code: Path,
    figures: list[tuple[str, str]],
    what: str,
    act: Act,
) -> None:
    """
    ``act`` on a server with STREAMS open streams: every stream gets its
    retry: hint, every source runs its finally, and it takes at most WITHIN
    seconds more than ``act`` on the same server with none open.
    """
    alone = baseline(factory, name, what, code, act)
    server = start(factory, name, code)
    tokens, clients = open_streams(server)
    took, readers = act(server, clients)
    assert readers is not None
    retried, finished = readers.ended(tokens, Reports(server.state))
    figures.append(
        (
            f"{what} {name:24} {STREAMS} streams",
            f"{took:.2f} s ({alone:.2f} s with none open), "
            f"{retried}/{STREAMS} retry:, {finished}/{STREAMS} finally",
        )
    )
    assert (retried, finished) == (STREAMS, STREAMS)
    assert took <= alone + WITHIN


def open_streams(server: Server) -> tuple[list[str], list[RawStream]]:
    tokens = [token() for _ in range(STREAMS)]
    clients: list[RawStream] = []
    for i, t in enumerate(tokens):
        # Sync sources that yield every 0.2 s, and idle async ones.
        kind = "sync_iter" if i % 2 else "async_iter"
        path = f"/stream/{kind}/?token={t}&idle=1&interval=0.2"
        clients.append(RawStream(server.port, path))
    for client in clients:
        assert client.next_event().data == "1"
    return tokens, clients


class Readers:
    """
    Read every stream to its end in a thread of its own, and close it then,
    as a browser does: a server may wait for its clients to close.
    """

    def __init__(self, clients: list[RawStream]) -> None:
        self.clients = clients
        self.pool = ThreadPoolExecutor(max_workers=len(clients))
        self.retries = [self.pool.submit(self._read, client) for client in clients]

    @staticmethod
    def _read(client: RawStream) -> int | None:
        try:
            return client.read_to_end()
        finally:
            client.close(reset=False)

    def ended(self, tokens: list[str], reports: Reports) -> tuple[int, int]:
        """Return how many streams got their retry hint and ran their finally."""
        try:
            retried = sum(future.result() is not None for future in self.retries)
        finally:
            for client in self.clients:
                client.close(reset=True)
            self.pool.shutdown()
        finished = sum(reports.finally_(t) is not None for t in tokens)
        return retried, finished


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A module of the test's own that the test project imports."""
    (tmp_path / "reloadme.py").write_text("CHANGED = None\n")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "signum"),
    [
        pytest.param(
            name,
            signum,
            id=f"{name}-{signum.name}",
            marks=[pytest.mark.xfail(reason=UNREACHABLE[name], strict=True)]
            if name in UNREACHABLE
            else [],
        )
        for signum, names in ((signal.SIGTERM, ALL), (signal.SIGINT, SIGINT_SERVERS))
        for name in names
    ],
)
@pytest.mark.timeout(150)
def test_a_signal_ends_open_streams_and_the_server_exits(
    name: str,
    signum: signal.Signals,
    start_server: ServerFactory,
    code: Path,
    figures: list[tuple[str, str]],
) -> None:
    shut_down_with_open_streams(
        start_server,
        name,
        code,
        figures,
        signum.name,
        lambda server, clients: time_exit(server, signum, clients),
    )


@pytest.mark.parametrize("name", RELOADING)
@pytest.mark.timeout(150)
def test_a_code_change_reloads_with_open_streams(
    name: str, start_server: ServerFactory, code: Path, figures: list[tuple[str, str]]
) -> None:
    shut_down_with_open_streams(
        start_server,
        name,
        code,
        figures,
        "reload",
        lambda server, clients: time_reload(server, code, clients),
    )


@pytest.mark.parametrize(
    "name", ["uvicorn-h11", "daphne", "gunicorn-gthread", "gunicorn-sync", "runserver"]
)
@pytest.mark.timeout(90)
def test_the_explicit_helpers_do_no_harm_beside_the_automatic_path(
    name: str, start_server: ServerFactory, code: Path
) -> None:
    env = EXPLICIT_SHUTDOWN_RUNSERVER if name == "runserver" else EXPLICIT_SHUTDOWN
    server = start(start_server, name, code, env)
    tokens, clients = open_streams(server)
    _, readers = time_exit(server, signal.SIGTERM, clients)
    assert readers is not None
    assert readers.ended(tokens, Reports(server.state)) == (STREAMS, STREAMS)
    assert spec_named(name) is server.spec


@pytest.mark.timeout(90)
def test_a_second_ctrl_c_still_reaches_the_server_and_force_quits(
    start_server: ServerFactory, code: Path
) -> None:
    """
    The first Ctrl-C ends the streams, and uvicorn then waits for a slow
    plain request; the second is uvicorn's own "force quit", as ever.
    """
    server = start(start_server, "uvicorn-h11", code)
    tokens, clients = open_streams(server)
    reports = Reports(server.state)
    slow_token = token()
    slow = RawStream(server.port, f"/slow/?seconds={LIMIT}&token={slow_token}")
    try:
        wait_for(lambda: reports.started(slow_token), LIMIT, "the slow request")
        readers = Readers(clients)
        server.signal_group(signal.SIGINT)
        assert readers.ended(tokens, reports) == (STREAMS, STREAMS)
        # uvicorn waits for the slow request now; it has not exited.
        assert not server.exited
        server.signal_group(signal.SIGINT)
        started = time.monotonic()
        server.wait(LIMIT)
        # Well before uvicorn's own --timeout-graceful-shutdown of 3 s.
        assert time.monotonic() - started < 1.0
    finally:
        slow.close(reset=True)
