"""
The six-connection limit in Chromium, measured: one page opens 20
EventSources (or 10 SharedEventSources at 10 URLs). Over HTTP/2 (the demo
under hypercorn with a test certificate) every one receives events; over
HTTP/1.1 (the demo under uvicorn) only 6 do, the others wait for a
connection that never frees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.conftest import (
    EXAMPLES,
    PAGE_TIMEOUT,
    START_TIMEOUT,
    DemoServer,
    StartServer,
    free_port,
)
from tests.integration.tls import (
    Certificates,
    make_certificates,
    wait_until_answers_tls,
)

#: How many streams the page opens, and how often each sends an event.
SOURCES = 20
SHARED_SOURCES = 10
INTERVAL = 0.1


class TlsDemoServer(DemoServer):
    """The demo under hypercorn, over TLS: HTTP/2 when the browser asks (ALPN)."""

    def __init__(self, certificates: Certificates, port: int, log_path: Path) -> None:
        super().__init__("hypercorn", port, log_path, {})
        self.certificates = certificates

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "hypercorn", "demo.asgi:application"),
            f"--bind=127.0.0.1:{self.port}",
            f"--certfile={self.certificates.cert}",
            f"--keyfile={self.certificates.key}",
            "--graceful-timeout=1",
        ]

    def start(self) -> None:
        # As DemoServer.start, but waits over HTTPS, trusting the test CA.
        assert self._process is None, "already started"
        self._log = self.log_path.open("ab")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "demo.settings",
            "SSE_DEMO_SERVER": self.kind,
        }
        self._process = subprocess.Popen(
            self.command(),
            cwd=EXAMPLES,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_answers_tls(
                self.url + "/",
                self._process,
                self.certificates,
                START_TIMEOUT,
                self.log_tail,
            )
        except AssertionError as error:
            self.stop()
            pytest.fail(f"hypercorn over TLS: {error}")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def h2_demo(certificates: Certificates, tmp_path: Path) -> Iterator[DemoServer]:
    server = TlsDemoServer(certificates, free_port(), tmp_path / "hypercorn.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_page(browser: Browser) -> Iterator[Page]:
    """A page that accepts the test certificate; fails the test on a script error."""
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(PAGE_TIMEOUT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def protocol(page: Page) -> str:
    name: str = page.evaluate(
        'performance.getEntriesByType("navigation")[0].nextHopProtocol'
    )
    return name


OPEN_EVENT_SOURCES = """({count, interval}) => {
    // One stream per URL; each counts its events.
    window.received = Array(count).fill(0);
    for (let i = 0; i < count; i++) {
        const source = new EventSource(`/counter/stream/?interval=${interval}&n=${i}`);
        source.addEventListener("count", () => { window.received[i] += 1; });
    }
}"""

OPEN_SHARED_EVENT_SOURCES = """async ({count, interval}) => {
    await new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = "/static/sse_response/shared-event-source.js";
        script.onload = resolve;
        script.onerror = reject;
        document.head.append(script);
    });
    window.received = Array(count).fill(0);
    for (let i = 0; i < count; i++) {
        const url = `/shared/stream/?interval=${interval}&n=${i}`;
        const source = new SharedEventSource(url);
        source.addEventListener("count", () => { window.received[i] += 1; });
    }
}"""


def receiving(page: Page, first_needs: int) -> list[int]:
    """
    Once the first stream has had ``first_needs`` events, how many each
    stream has had (every stream that has a connection has had some by then).
    """
    page.wait_for_function(f"window.received[0] >= {first_needs}")
    counts: list[int] = page.evaluate("window.received")
    return counts


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("script", "count"),
    [
        pytest.param(OPEN_EVENT_SOURCES, SOURCES, id="EventSource"),
        pytest.param(OPEN_SHARED_EVENT_SOURCES, SHARED_SOURCES, id="SharedEventSource"),
    ],
)
def test_over_http2_every_stream_of_a_page_receives(
    script: str,
    count: int,
    h2_demo: DemoServer,
    tls_page: Page,
    browser_figures: list[tuple[str, str]],
) -> None:
    tls_page.goto(h2_demo.url + "/progress/")
    assert protocol(tls_page) == "h2"
    tls_page.evaluate(script, {"count": count, "interval": INTERVAL})
    tls_page.wait_for_function("window.received.every((n) => n >= 5)")
    counts: list[int] = tls_page.evaluate("window.received")
    name = "EventSource" if count == SOURCES else "SharedEventSource"
    browser_figures.append(
        (
            f"{count} {name}s in one page, HTTP/2 (hypercorn)",
            f"{sum(1 for n in counts if n)} of {count} receive events",
        )
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("script", "count"),
    [
        pytest.param(OPEN_EVENT_SOURCES, SOURCES, id="EventSource"),
        pytest.param(OPEN_SHARED_EVENT_SOURCES, SHARED_SOURCES, id="SharedEventSource"),
    ],
)
def test_over_http1_six_streams_of_a_page_receive(
    script: str,
    count: int,
    start_server: StartServer,
    page: Page,
    browser_figures: list[tuple[str, str]],
) -> None:
    server = start_server("uvicorn")
    page.goto(server.url + "/progress/")
    assert protocol(page) == "http/1.1"
    page.evaluate(script, {"count": count, "interval": INTERVAL})
    # Two seconds of events on the first stream: the six streams that got
    # a connection have all had events by then; the others have none.
    counts = receiving(page, 20)
    served = sum(1 for n in counts if n)
    name = "EventSource" if count == SOURCES else "SharedEventSource"
    browser_figures.append(
        (
            f"{count} {name}s in one page, HTTP/1.1 (uvicorn)",
            f"{served} of {count} receive events",
        )
    )
    assert served == 6, counts
