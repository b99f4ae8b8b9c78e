"""
The demo site in a real browser: every page receives its events, the
progress bar completes, and the resumable counter survives a server restart
with no gap and no duplicate.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Screenshot, StartServer

SERVERS = ["uvicorn", "gunicorn"]


@pytest.mark.parametrize("kind", SERVERS)
def test_index_shows_how_the_site_is_served(
    kind: str, start_server: StartServer, page: Page, screenshot: Screenshot
) -> None:
    heartbeat = "15" if kind == "uvicorn" else "5"
    server = start_server(kind, SSE_DEMO_HEARTBEAT=heartbeat)
    page.goto(server.url + "/")

    expect(page.locator("#interface")).to_have_text(
        "ASGI" if kind == "uvicorn" else "WSGI"
    )
    expect(page.locator("#server")).to_contain_text(kind)
    expect(page.locator("#heartbeat")).to_contain_text(f"{heartbeat} s")
    for name in ("Progress bar", "Live ticker", "Resumable counter"):
        expect(page.locator("main").get_by_role("link", name=name)).to_be_visible()
    screenshot(page, "index" if kind == "uvicorn" else f"index-{kind}")

    page.locator("main").get_by_role("link", name="Resumable counter").click()
    expect(page).to_have_url(server.url + "/counter/")


@pytest.mark.parametrize("kind", SERVERS)
def test_progress_bar_completes(
    kind: str, start_server: StartServer, page: Page, screenshot: Screenshot
) -> None:
    server = start_server(kind)
    steps, delay = 20, 0.1
    page.goto(f"{server.url}/progress/?steps={steps}&delay={delay}")
    bar = page.locator("#bar")
    expect(bar).to_have_attribute("aria-valuenow", "0")

    page.get_by_role("button", name="Start the task").click()
    page.wait_for_function("window.progressEvents.length >= 5")
    screenshot(page, f"progress-running-{kind}")

    expect(page.locator("#status")).to_have_text(f"Done: all {steps} steps finished.")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#state")).to_have_text("closed")
    assert page.evaluate("window.progressEvents") == list(range(1, steps + 1))
    # The steps arrived one by one while the task ran, not all at its end.
    times: list[float] = page.evaluate("window.progressTimes")
    assert times[-1] - times[0] >= 0.5 * (steps - 1) * delay * 1000
    screenshot(page, "progress" if kind == "uvicorn" else f"progress-{kind}")

    # And again: a new task on a new stream.
    page.get_by_role("button", name="Run it again").click()
    expect(page.locator("#status")).not_to_have_text(
        f"Done: all {steps} steps finished."
    )
    expect(page.locator("#status")).to_have_text(f"Done: all {steps} steps finished.")
    assert page.evaluate("window.progressEvents") == list(range(1, steps + 1))


@pytest.mark.parametrize("kind", SERVERS)
def test_ticker_receives_prices(
    kind: str, start_server: StartServer, page: Page, screenshot: Screenshot
) -> None:
    server = start_server(kind)
    page.goto(server.url + "/ticker/?interval=0.1")

    page.wait_for_function("window.tickerEvents.length >= 30")
    expect(page.locator("#state")).to_have_text("open")
    times = page.evaluate("window.tickerEvents.map((batch) => batch.time)")
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    for symbol in ("ACME", "GLOBEX", "INITECH", "HOOLI"):
        price = page.locator(f"#row-{symbol} .price").inner_text()
        assert float(price) > 0
    expect(page.locator("#updated")).to_contain_text("updates received")
    screenshot(page, "ticker" if kind == "uvicorn" else f"ticker-{kind}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("kind", "crash"),
    [
        pytest.param("uvicorn", False, id="uvicorn-sigterm"),
        # The process dies at once: no stream is ended cleanly.
        pytest.param("uvicorn", True, id="uvicorn-sigkill"),
        pytest.param("gunicorn", False, id="gunicorn-sigterm"),
    ],
)
def test_counter_survives_a_server_restart(
    kind: str,
    crash: bool,
    start_server: StartServer,
    page: Page,
    screenshot: Screenshot,
) -> None:
    server = start_server(kind)
    page.goto(server.url + "/counter/?interval=0.2")
    page.wait_for_function("window.counterEvents.length >= 5")
    expect(page.locator("#state")).to_have_text("open")

    server.stop(crash=crash)
    # The page sees the connection drop, and keeps trying to reconnect.
    expect(page.locator("#state")).to_have_text("server gone, reconnecting…")
    before: list[int] = page.evaluate("window.counterEvents")
    last = before[-1]
    assert before == list(range(1, last + 1))
    expect(page.locator("#count")).to_have_text(str(last))

    server.start()  # on the same port
    page.wait_for_function(f"window.counterEvents.length >= {len(before) + 5}")
    expect(page.locator("#state")).to_have_text("open")

    received: list[int] = page.evaluate("window.counterEvents")
    assert received[: len(before)] == before
    assert received[len(before) : len(before) + 2] == [last + 1, last + 2]
    # Every value once, in order: no gap, no duplicate.
    assert received == list(range(1, len(received) + 1))
    connections = page.evaluate("window.counterConnections")
    assert connections[0] == {"last_event_id": None, "next": 1}
    assert connections[-1] == {"last_event_id": str(last), "next": last + 1}
    expect(page.locator("#check")).to_contain_text("0 gaps, 0 duplicates")
    name = "counter" if (kind, crash) == ("uvicorn", False) else f"counter-{kind}"
    screenshot(page, name if not crash else f"{name}-crash")


@pytest.mark.timeout(120)
def test_counter_goes_on_through_a_code_change_under_uvicorn_reload(
    start_server: StartServer, page: Page
) -> None:
    """
    ``uvicorn --reload`` with a page open: the reload is not held up by the
    open stream, and the count goes on with no gap and no duplicate.
    """
    server = start_server("uvicorn-reload")
    page.goto(server.url + "/counter/?interval=0.2")
    page.wait_for_function("window.counterEvents.length >= 5")
    connections = len(page.evaluate("window.counterConnections"))

    (server.code / "changed.py").write_text(f"CHANGED = {time.time()!r}\n")
    changed = time.monotonic()
    page.wait_for_function(f"window.counterConnections.length > {connections}")
    reconnected = time.monotonic() - changed
    before: list[int] = page.evaluate("window.counterEvents")
    page.wait_for_function(f"window.counterEvents.length >= {len(before) + 5}")

    received: list[int] = page.evaluate("window.counterEvents")
    assert received == list(range(1, len(received) + 1))
    assert page.evaluate("window.counterConnections")[-1]["last_event_id"] == str(
        before[-1]
    )
    expect(page.locator("#check")).to_contain_text("0 gaps, 0 duplicates")
    # The new process serves, and the page is back on it, within 2 s.
    assert reconnected <= 2.0, f"reconnected {reconnected:.2f} s after the change"


def test_live_figures_follow_streams_that_open_and_end(
    start_server: StartServer, browser: Browser, screenshot: Screenshot
) -> None:
    server = start_server("uvicorn")
    figures = browser.new_page()
    ticker = browser.new_page()
    try:
        figures.goto(server.url + "/figures/")
        figures.wait_for_function("(window.latestFigures || {}).open >= 1")
        ticker.goto(server.url + "/ticker/")
        figures.wait_for_function(
            "window.latestFigures.open_by_path['/ticker/stream/'] === 1"
        )
        expect(figures.locator("#open")).to_have_text("2")
        ticker.close()
        figures.wait_for_function(
            "(window.latestFigures.finished.client_left || 0) >= 1"
            " && window.latestFigures.open === 1"
        )
        assert figures.evaluate("window.latestFigures.events") >= 1
        expect(figures.locator("#finished")).to_contain_text("client_left: 1")
        screenshot(figures, "figures")
    finally:
        figures.close()
        if not ticker.is_closed():
            ticker.close()
