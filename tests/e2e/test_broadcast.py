"""
The demo's broadcast page in a real browser: a message posted in one window
appears in every open window, under uvicorn with the MemoryBackend (what
``make demo`` runs), and under gunicorn with three worker processes sharing a
real redis-server or a real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.broadcast.postgres_server import PostgresServer
from tests.broadcast.redis_server import RedisServer
from tests.e2e.conftest import EXAMPLES, PAGE_TIMEOUT, Screenshot, StartServer

#: How many warm-up posts a test may send before every window has one.
WARM_UP_TRIES = 50


@pytest.fixture
def database_url() -> Iterator[str]:
    """A real PostgreSQL, migrated for the demo: its SSE_DEMO_DATABASE_URL."""
    server = PostgresServer()
    try:
        server.start()
        env = {**os.environ, "SSE_DEMO_DATABASE_URL": server.url}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=EXAMPLES,
            env=env,
            check=True,
            timeout=60,
        )
        yield server.url
    finally:
        server.remove()


def open_windows(browser: Browser, url: str, count: int) -> list[Page]:
    pages = []
    for _ in range(count):
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        context.set_default_timeout(PAGE_TIMEOUT)
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#state")).to_have_text("open")
        pages.append(page)
    return pages


def post(page: Page, text: str, author: str = "") -> None:
    page.locator("#author").fill(author)
    page.locator("#text").fill(text)
    page.get_by_role("button", name="Post").click()


def messages(page: Page) -> list[str]:
    result: list[str] = page.evaluate("window.boardMessages")
    return result


def warm_up(pages: list[Page]) -> None:
    """
    Post until every window has received a post: from then on, each one's
    stream is subscribed, whenever its subscription took effect.
    """
    for attempt in range(WARM_UP_TRIES):
        post(pages[0], f"warm-up {attempt}")
        pages[0].wait_for_function(
            f"window.boardMessages.includes({json.dumps(f'warm-up {attempt}')})"
        )
        if all(f"warm-up {attempt}" in messages(page) for page in pages):
            return
    raise AssertionError("some window never received a post")


def windows_here(pages: list[Page], count: int) -> None:
    """Each window shows that ``count`` windows are here (presence)."""
    for page in pages:
        expect(page.locator("#here")).to_have_text(f"{count} windows here")


def check_everyone_gets_everything(pages: list[Page]) -> None:
    warm_up(pages)
    sent = []
    for n, page in enumerate(pages * 2):
        text = f"message {n} from window {pages.index(page)}"
        post(page, text, author=f"window {pages.index(page)}")
        page.wait_for_function(f"window.boardMessages.includes({json.dumps(text)})")
        sent.append(text)
    for page in pages:
        page.wait_for_function(f"window.boardMessages.includes({json.dumps(sent[-1])})")
        got = [text for text in messages(page) if not text.startswith("warm-up")]
        assert got == sent
        assert page.evaluate("window.boardResets") == []


def test_a_post_appears_in_every_window_uvicorn_memory(
    start_server: StartServer, browser: Browser, screenshot: Screenshot
) -> None:
    server = start_server("uvicorn")
    pages = open_windows(browser, server.url + "/broadcast/", 3)
    try:
        check_everyone_gets_everything(pages)
        windows_here(pages, 3)
        screenshot(pages[1], "broadcast")
        # A window that closes leaves: the others are told, and count again.
        pages.pop().context.close()
        windows_here(pages, 2)
    finally:
        for page in pages:
            page.context.close()


def test_the_board_posts_with_the_csrf_token(
    start_server: StartServer, browser: Browser
) -> None:
    """
    The demo has Django's CsrfViewMiddleware on: the page's POST carries the
    form's token and is accepted, and a POST without one is refused.
    """
    server = start_server("uvicorn")
    (page,) = open_windows(browser, server.url + "/broadcast/", 1)
    try:
        token = page.locator("#post input[name=csrfmiddlewaretoken]")
        expect(token).to_have_count(1)
        assert len(token.get_attribute("value") or "") >= 32
        with page.expect_response("**/broadcast/post/") as answer:
            post(page, "with a token")
        assert answer.value.status == 201
        page.wait_for_function("window.boardMessages.includes('with a token')")
        refused = page.request.post(
            server.url + "/broadcast/post/", form={"text": "without a token"}
        )
        assert refused.status == 403
        page.wait_for_timeout(300)
        assert "without a token" not in messages(page)
    finally:
        page.context.close()


@pytest.mark.parametrize("service", ["redis", "postgres"])
def test_a_post_appears_in_every_window_gunicorn_workers(
    start_server: StartServer,
    browser: Browser,
    request: pytest.FixtureRequest,
    screenshot: Screenshot,
    service: str,
) -> None:
    if service == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        env = {"SSE_DEMO_REDIS": redis_server.url}
    else:
        env = {"SSE_DEMO_DATABASE_URL": request.getfixturevalue("database_url")}
    server = start_server(
        "gunicorn", SSE_DEMO_HEARTBEAT="1", GUNICORN_CMD_ARGS="--workers 3", **env
    )
    pages = open_windows(browser, server.url + "/broadcast/", 4)
    try:
        check_everyone_gets_everything(pages)
        # The windows are served by several workers: presence counts them all.
        windows_here(pages, 4)
        # A process that serves no window publishes too: manage.py sse_publish,
        # with the demo's settings. Which worker serves which request is the
        # kernel's choice, so the posts above may all come from one of them.
        env = {**os.environ, **server.env}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        data = {"text": "from the command line", "author": "cron", "pid": 0}
        subprocess.run(
            [
                *(sys.executable, "manage.py", "sse_publish", "demo-board"),
                *("--event", "post", "--data", json.dumps(data)),
            ],
            cwd=EXAMPLES,
            env=env,
            check=True,
            timeout=60,
        )
        for page in pages:
            page.wait_for_function(
                "window.boardMessages.includes('from the command line')"
            )
        screenshot(pages[0], f"broadcast-gunicorn-{service}")
    finally:
        for page in pages:
            page.context.close()
