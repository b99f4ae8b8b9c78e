"""
Ending open streams when the process is told to stop: the signal handlers of
sse_response.shutdown and sse_response.gunicorn, and the interpreter's exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from django.test import override_settings

from sse_response import EventStreamHttpResponse, lifetime
from sse_response.gunicorn import post_worker_init
from sse_response.shutdown import (
    WAKE_SIGNAL,
    EndStreamsOnShutdown,
    end_streams_on_signals,
    prepare,
)
from tests.polling import wait_for
from tests.support import GATE, WAIT, Probe, make_source, wait_for_event

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@pytest.fixture(autouse=True)
def accepting_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal makes this process refuse new streams: undo that after each test."""
    monkeypatch.setattr(lifetime, "_refusing", False)


@pytest.fixture
def server_handlers() -> Iterator[list[int]]:
    """Stand in for a server's own signal handlers, and restore pytest's after."""
    saved: dict[int, Any] = {
        signum: signal.getsignal(signum)
        for signum in (*SIGNALS, signal.SIGQUIT, WAKE_SIGNAL)
        if signum is not None
    }
    received: list[int] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    for signum in SIGNALS:
        signal.signal(signum, server_handler)
    yield received
    for number, handler in saved.items():
        signal.signal(number, handler)


async def open_stream(probe: Probe) -> tuple[EventStreamHttpResponse, Any]:
    response = EventStreamHttpResponse(
        make_source("sync_iterator", lambda last: iter([{"data": "a"}, GATE]), probe),
        heartbeat=None,
        end_retry_ms=2500,
    )
    chunks = aiter(response)
    assert await anext(chunks) == b""  # the headers go out at once
    assert await anext(chunks) == b"data: a\n\n"
    return response, chunks


@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("install", ["gunicorn hook", "end_streams_on_signals"])
async def test_a_signal_ends_open_streams_then_reaches_the_server(
    signum: int, install: str, server_handlers: list[int], probe: Probe
) -> None:
    _, chunks = await open_stream(probe)
    if install == "gunicorn hook":
        post_worker_init(worker=None)
    else:
        end_streams_on_signals()
        end_streams_on_signals()  # a second call must not chain twice

    signal.raise_signal(signum)

    assert server_handlers == [signum]
    assert [chunk async for chunk in chunks] == [b"retry: 2500\n"]
    probe.release()
    assert await wait_for_event(probe.finished)

    # A client that reconnects to this process (on a kept-alive connection,
    # say) is sent on at once, and its source never starts.
    late = Probe()
    response = EventStreamHttpResponse(
        make_source("async_callable", lambda last: iter([{"data": "b"}]), late),
        request=None,
        end_retry_ms=700,
    )
    assert [chunk async for chunk in response] == [b"", b"retry: 700\n"]
    assert not late.started.is_set()


def ours(signum: int) -> bool:
    return getattr(signal.getsignal(signum), "ends_event_streams", False) is True


async def test_a_stream_that_starts_in_the_main_thread_chains_the_handlers(
    server_handlers: list[int], probe: Probe
) -> None:
    assert not ours(signal.SIGTERM)
    _, chunks = await open_stream(probe)
    assert ours(signal.SIGTERM)
    assert ours(signal.SIGINT)

    signal.raise_signal(signal.SIGTERM)

    assert server_handlers == [signal.SIGTERM]
    assert [chunk async for chunk in chunks] == [b"retry: 2500\n"]


def test_a_stream_that_starts_in_another_thread_has_the_main_thread_chain_them(
    server_handlers: list[int], probe: Probe
) -> None:
    """gunicorn's gthread worker and runserver serve outside the main thread."""
    prepare()  # as the app did when Django started; a second call changes nothing
    assert WAKE_SIGNAL is not None
    assert ours(WAKE_SIGNAL)
    response = EventStreamHttpResponse(
        make_source("sync_iterator", lambda last: iter([{"data": "a"}, GATE]), probe),
        heartbeat=None,
    )
    first = threading.Event()

    def serve() -> None:  # a WSGI server's thread
        for _ in response:
            first.set()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        assert first.wait(WAIT)
        # The main thread (this one) runs the handler the stream asked for.
        wait_for(lambda: ours(signal.SIGTERM) and ours(signal.SIGINT), WAIT, "chain")
    finally:
        response.close()
        probe.release()
        server.join(WAIT)
    assert not server.is_alive()


async def test_the_setting_leaves_every_handler_alone(
    server_handlers: list[int], probe: Probe
) -> None:
    with override_settings(SSE_RESPONSE_END_STREAMS_ON_SIGNALS=False):
        response, _ = await open_stream(probe)
        response.close()
    assert not ours(signal.SIGTERM)
    assert not ours(signal.SIGINT)


def test_sigquit_is_chained_only_where_a_python_handler_handles_it(
    server_handlers: list[int],
) -> None:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    end_streams_on_signals()
    assert signal.getsignal(signal.SIGQUIT) == signal.SIG_DFL

    quits: list[int] = []
    signal.signal(signal.SIGQUIT, lambda signum, frame: quits.append(signum))
    end_streams_on_signals()
    assert ours(signal.SIGQUIT)
    signal.raise_signal(signal.SIGQUIT)
    assert quits == [signal.SIGQUIT]


async def test_the_asgi_middleware_chains_the_handlers_on_its_first_call(
    server_handlers: list[int], probe: Probe
) -> None:
    calls: list[str] = []

    async def application(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: Any) -> None:
        raise AssertionError("not called")

    wrapped = EndStreamsOnShutdown(application)
    assert not getattr(signal.getsignal(signal.SIGTERM), "ends_event_streams", False)
    await wrapped({"type": "lifespan"}, receive, send)
    assert calls == ["lifespan"]
    assert getattr(signal.getsignal(signal.SIGTERM), "ends_event_streams", False)

    _, chunks = await open_stream(probe)
    signal.raise_signal(signal.SIGTERM)
    assert server_handlers == [signal.SIGTERM]
    assert [chunk async for chunk in chunks] == [b"retry: 2500\n"]
    probe.release()


def test_without_a_previous_handler_the_signal_exits_through_the_interpreter(
    tmp_path: Path,
) -> None:
    """The default action would kill the process before any stream could end."""
    result = run_script(
        tmp_path,
        """
        import signal
        from sse_response.shutdown import end_streams_on_signals
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        end_streams_on_signals()
        try:
            signal.raise_signal(signal.SIGTERM)
        except SystemExit as exc:
            print("exit", exc.code)
        """,
    )
    assert result.stdout.split() == ["exit", str(128 + signal.SIGTERM)]


@pytest.mark.parametrize("kind", ["sync_iterator", "async_iterator"])
def test_at_exit_open_streams_end_and_their_sources_run_finally(
    tmp_path: Path, kind: str
) -> None:
    """Pump threads are daemon threads: without a grace, exit would cut them."""
    result = run_script(
        tmp_path,
        f"""
        import asyncio, threading, time
        from sse_response import EventStreamHttpResponse

        def sync_source():
            try:
                while True:
                    yield {{"data": "tick"}}
                    time.sleep(0.05)
            finally:
                print("finally ran", flush=True)

        async def async_source():
            try:
                while True:
                    yield {{"data": "tick"}}
                    await asyncio.sleep(0.05)
            finally:
                print("finally ran", flush=True)

        source = sync_source() if "{kind}" == "sync_iterator" else async_source()
        response = EventStreamHttpResponse(source, heartbeat=None)
        flowing = threading.Event()

        def serve():  # a WSGI server's thread
            for chunk in response:
                flowing.set()

        threading.Thread(target=serve, daemon=True).start()
        assert flowing.wait(5)
        """,
    )
    assert "finally ran" in result.stdout


def run_script(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(
        "import django\nfrom django.conf import settings\n"
        "settings.configure()\ndjango.setup()\n" + textwrap.dedent(code)
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result
