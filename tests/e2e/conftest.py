"""
Fixtures for the browser tests of the demo site (examples/demo).

The demo runs under a real server in a subprocess, on 127.0.0.1 and a free
port; the pages are driven by Playwright with Debian's Chromium, which .ci/run
installs. A missing Chromium fails the tests: it never skips them.

Screenshots go to each test's tmp_path. Set SSE_DEMO_UPDATE_SCREENSHOTS=1 to
also copy those of DOCS_SCREENSHOTS to docs/img/, where the README shows them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.polling import wait_until_answers

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCS_IMG = ROOT / "docs" / "img"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

#: Seconds a server has to start answering, or to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

#: Milliseconds a page condition may take: generous, for a busy CI machine.
PAGE_TIMEOUT = 30_000
expect.set_options(timeout=PAGE_TIMEOUT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DemoServer:
    """The demo site under one server, in a subprocess that can be restarted."""

    def __init__(
        self, kind: str, port: int, log_path: Path, env: dict[str, str]
    ) -> None:
        self.kind = kind
        self.port = port
        self.log_path = log_path
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def code(self) -> Path:
        """The directory ``uvicorn-reload`` watches: a change there reloads it."""
        return self.log_path.with_name(f"{self.kind}-code")

    def command(self) -> list[str]:
        address = f"127.0.0.1:{self.port}"
        if self.kind == "uvicorn":
            return [
                *(sys.executable, "-m", "uvicorn", "demo.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--timeout-graceful-shutdown", "1", "--no-access-log"),
            ]
        if self.kind == "uvicorn-reload":
            # As a developer runs it; the test changes code in its own directory.
            return [
                *(sys.executable, "-m", "uvicorn", "demo.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--reload", "--reload-dir", str(self.code), "--no-access-log"),
            ]
        if self.kind == "gunicorn":
            return [
                *(sys.executable, "-m", "gunicorn", "demo.wsgi"),
                # gthread workers with 32 threads.
                *("--config", "gunicorn.conf.py", "--bind", address),
            ]
        raise ValueError(f"unknown server {self.kind!r}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def start(self) -> None:
        assert self._process is None, "already started"
        self.code.mkdir(exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {
            **os.environ,
            # The suite's own settings may be in the environment: not the demo's.
            "DJANGO_SETTINGS_MODULE": "demo.settings",
            "SSE_DEMO_SERVER": self.kind,
            **self.env,
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
            wait_until_answers(
                self.url + "/", self._process, START_TIMEOUT, self.log_tail
            )
        except AssertionError as error:
            self.stop()
            pytest.fail(f"{self.kind}: {error}")

    def stop(self, *, crash: bool = False) -> None:
        """
        Stop the server (SIGTERM, then SIGKILL; or SIGKILL at once when
        ``crash``) and wait until it is gone.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            if crash:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None


StartServer = Callable[..., DemoServer]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start the demo: ``start_server("uvicorn")``; all are stopped at teardown."""
    servers: list[DemoServer] = []

    def start(kind: str, **env: str) -> DemoServer:
        server = DemoServer(kind, free_port(), tmp_path / f"{kind}.log", env)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get install -y --no-install-recommends chromium; .ci/run does)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; the test fails if a script on it throws."""
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.set_default_timeout(PAGE_TIMEOUT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


Screenshot = Callable[[Page, str], Path]

#: The screenshots that the README shows, one of each page.
DOCS_SCREENSHOTS = {"index", "progress", "ticker", "counter"}


@pytest.fixture
def screenshot(tmp_path: Path) -> Screenshot:
    """Save a screenshot of the page as <tmp_path>/<name>.png."""

    def take(page: Page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if os.environ.get("SSE_DEMO_UPDATE_SCREENSHOTS") and name in DOCS_SCREENSHOTS:
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMG / path.name)
        return path

    return take


browser_figures_key = pytest.StashKey[list[tuple[str, str]]]()


@pytest.fixture(scope="session")
def browser_figures(request: pytest.FixtureRequest) -> list[tuple[str, str]]:
    """Record a figure a browser test measured: ``browser_figures.append(...)``."""
    return request.config.stash.setdefault(browser_figures_key, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = terminalreporter.config.stash.get(browser_figures_key, [])
    if figures:
        terminalreporter.section("browser figures")
        width = max(len(what) for what, _ in figures)
        for what, value in sorted(figures):
            terminalreporter.write_line(f"{what:<{width}}  {value}")


@pytest.fixture
def tabs(browser: Browser) -> Iterator[Callable[[str], Page]]:
    """
    Open tabs of one browser profile: ``tabs(url)`` opens one more. They share
    what tabs of a profile share (SharedWorkers, Web Locks, connections); the
    test fails if a script on any of them throws.
    """
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.set_default_timeout(PAGE_TIMEOUT)
    errors: list[str] = []

    def open_tab(url: str) -> Page:
        tab = context.new_page()
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(url)
        return tab

    yield open_tab
    context.close()
    assert not errors, f"errors in the pages: {errors}"
