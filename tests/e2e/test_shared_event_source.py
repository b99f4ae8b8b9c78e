"""
SharedEventSource (sse_response/static/sse_response/shared-event-source.js)
in Chromium, over HTTP/1.1: the tabs of a browser share one stream
connection, through a SharedWorker or through a leader tab, and keep every
guarantee of a plain EventSource.

The pages are the demo's /shared/ page: a counter whose event ids are its
values, each event saying how many of these streams the server holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ROOT, Screenshot, StartServer
from tests.integration.servers import SERVERS, Server
from tests.integration.tricky import EVENT_TYPES, TRICKY_MESSAGES

OpenTab = Callable[[str], Page]

#: Seconds between two events of the counter in these tests.
INTERVAL = 0.1
TRANSPORTS = ["worker", "leader"]


def received(tab: Page) -> list[int]:
    values: list[int] = tab.evaluate("window.sharedEvents")
    return values


def assert_no_gap_no_duplicate(values: list[int]) -> None:
    assert values, "no event received"
    assert values == list(range(values[0], values[0] + len(values)))


def wait_for_value(tab: Page, value: int) -> None:
    tab.wait_for_function(
        f"window.sharedEvents.length && window.sharedEvents.at(-1) >= {value}"
    )


def leader_lock_holder(tab: Page) -> str | None:
    """The client that holds a leader's Web Lock, as the Web Locks API says."""
    holder: str | None = tab.evaluate(
        """async () => {
            const { held } = await navigator.locks.query();
            const prefix = "sse_response:leader:";
            const lock = held.find((lock) => lock.name.startsWith(prefix));
            return lock ? lock.clientId : null;
        }"""
    )
    return holder


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("kind", "transport"),
    [("uvicorn", "worker"), ("uvicorn", "leader"), ("gunicorn", "worker")],
)
def test_ten_tabs_hold_one_connection(
    kind: str,
    transport: str,
    start_server: StartServer,
    tabs: OpenTab,
    browser_figures: list[tuple[str, str]],
) -> None:
    server = start_server(kind)
    url = f"{server.url}/shared/?interval={INTERVAL}&transport={transport}"
    opened = [tabs(url) for _ in range(10)]
    for tab in opened:
        tab.wait_for_function("window.sharedEvents.length >= 1")
        expect(tab.locator("#transport")).to_have_text(transport)
    for tab in opened:
        expect(tab.locator("#tabs")).to_have_text("10 tabs")

    # Every tab gets every event from the one it joined at: 20 more after
    # the last tab joined.
    last_joined = received(opened[-1])[0]
    for tab in opened:
        wait_for_value(tab, last_joined + 20)
    for tab in opened:
        values = received(tab)
        assert_no_gap_no_duplicate(values)
        assert values[0] <= last_joined
        # And every event said: the server holds one stream connection.
        assert set(tab.evaluate("window.sharedConnections")) == {1}
        expect(tab.locator("#state")).to_have_text("open")
    browser_figures.append(
        (f"10 tabs, SharedEventSource ({transport}), {kind}", "1 server connection")
    )


@pytest.mark.timeout(120)
def test_plain_event_sources_in_ten_tabs_stop_at_six(
    start_server: StartServer,
    tabs: OpenTab,
    browser_figures: list[tuple[str, str]],
) -> None:
    """What SharedEventSource avoids: 10 tabs, each with a plain EventSource."""
    server = start_server("uvicorn")
    # Pages that open no stream by themselves: a tab whose page needs a new
    # connection would not load at all past the limit.
    opened = [tabs(f"{server.url}/progress/") for _ in range(10)]
    for tab in opened:
        tab.evaluate(
            """(interval) => {
                window.got = 0;
                const source = new EventSource(`/counter/stream/?interval=${interval}`);
                source.addEventListener("count", () => { window.got += 1; });
            }""",
            INTERVAL,
        )
    # The first tab's stream has a connection; once it has had 20 events,
    # every tab that got one has had some, and the others still wait.
    opened[0].wait_for_function("window.got >= 20")
    counts: list[int] = [tab.evaluate("window.got") for tab in opened]
    served = sum(1 for got in counts if got > 0)
    assert served == 6, counts
    browser_figures.append(
        ("10 tabs, plain EventSource, HTTP/1.1", f"{served} of 10 receive events")
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_closing_the_owning_tab_loses_and_repeats_nothing(
    transport: str,
    start_server: StartServer,
    tabs: OpenTab,
    browser_figures: list[tuple[str, str]],
) -> None:
    server = start_server("uvicorn")
    url = f"{server.url}/shared/?interval={INTERVAL}&transport={transport}"
    # The first tab opens the connection (and, as leader, holds it).
    owner, *others = [tabs(url) for _ in range(4)]
    others[-1].wait_for_function("window.sharedEvents.length >= 1")
    for tab in others:
        wait_for_value(tab, received(others[-1])[0] + 5)
    leader_before = leader_lock_holder(others[0])
    closed_at: float = others[0].evaluate("Date.now()")
    owner.close()
    after = max(received(others[0]))
    for tab in others:
        wait_for_value(tab, after + 20)

    for tab in others:
        assert_no_gap_no_duplicate(received(tab))
        expect(tab.locator("#tabs")).to_have_text("3 tabs")
    # The longest wait for an event around the close: with a leader tab, how
    # long the takeover took (the counter ticks every 0.1 s).
    times: list[float] = others[0].evaluate("window.sharedTimes")
    longest = max(
        later - earlier
        for earlier, later in itertools.pairwise(times)
        if later >= closed_at and earlier <= closed_at + 2000
    )
    assert longest < 1000 + INTERVAL * 1000, f"no event for {longest} ms"
    browser_figures.append(
        (
            f"owning tab closed ({transport}): longest wait for an event",
            f"{longest:.0f} ms (counter every {INTERVAL * 1000:.0f} ms)",
        )
    )
    if transport == "worker":
        # The worker outlives the tab: the connection never dropped.
        assert set(others[0].evaluate("window.sharedConnections")) == {1}
    else:
        # Another tab leads now (and holds the connection).
        assert leader_before is not None
        leader_after = leader_lock_holder(others[0])
        assert leader_after not in (None, leader_before)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_closed_source_gets_nothing_and_the_last_close_ends_the_connection(
    transport: str, start_server: StartServer, tabs: OpenTab
) -> None:
    server = start_server("uvicorn")
    url = f"{server.url}/shared/?interval={INTERVAL}&transport={transport}"
    first, second, third = [tabs(url) for _ in range(3)]
    for tab in (first, second, third):
        tab.wait_for_function("window.sharedEvents.length >= 3")

    first.evaluate("source.close()")
    assert first.evaluate("source.readyState") == 2
    stopped_at = received(first)
    wait_for_value(second, stopped_at[-1] + 10)
    assert received(first) == stopped_at
    expect(second.locator("#tabs")).to_have_text("2 tabs")

    second.evaluate("source.close()")
    third.evaluate("source.close()")
    # A stream at another URL has a connection of its own. Once the closed
    # one is gone, its events say the server holds just that one.
    fresh = tabs(f"{server.url}/shared/?interval={INTERVAL * 1.5}")
    fresh.wait_for_function("window.sharedConnections.at(-1) === 1")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_tab_sees_the_errors_and_resumes_after_a_restart(
    transport: str, start_server: StartServer, tabs: OpenTab
) -> None:
    server = start_server("uvicorn")
    url = f"{server.url}/shared/?interval={INTERVAL}&transport={transport}"
    opened = [tabs(url) for _ in range(3)]
    for tab in opened:
        tab.wait_for_function("window.sharedEvents.length >= 3")

    server.stop()
    for tab in opened:
        # An "error" event, with readyState CONNECTING: it will reconnect.
        expect(tab.locator("#state")).to_have_text("reconnecting…")
        assert tab.evaluate("source.readyState") == 0
    before = max(received(tab)[-1] for tab in opened)

    server.start()  # the same port; the stream's retry: is 500 ms
    for tab in opened:
        wait_for_value(tab, before + 10)
        expect(tab.locator("#state")).to_have_text("open")
        # Resumed with Last-Event-ID: no gap, no duplicate.
        assert_no_gap_no_duplicate(received(tab))


@pytest.mark.timeout(120)
def test_the_index_says_how_many_tabs_share_the_connection(
    start_server: StartServer, tabs: OpenTab, screenshot: Screenshot
) -> None:
    server = start_server("uvicorn")
    first = tabs(server.url + "/")
    expect(first.locator("#shared")).to_contain_text(
        "1 tab of this browser holds one connection"
    )
    expect(first.locator("#shared-transport")).to_have_text("a SharedWorker")
    second = tabs(server.url + "/")
    counter = tabs(server.url + "/shared/")
    for tab in (first, second):
        expect(tab.locator("#shared-tabs")).to_have_text("3 tabs")
    expect(counter.locator("#tabs")).to_have_text("3 tabs")
    # The page's events say what the server holds: one stream connection.
    expect(counter.locator("#connections")).to_have_text("1 connection")
    screenshot(counter, "shared")

    counter.close()
    for tab in (first, second):
        expect(tab.locator("#shared-tabs")).to_have_text("2 tabs")
    screenshot(first, "index-shared")


SCRIPT = ROOT / "sse_response" / "static" / "sse_response" / "shared-event-source.js"

READ_BOTH = """async ({types, count, transport}) => {
    await new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = "/shared-event-source.js";
        script.onload = resolve;
        script.onerror = reject;
        document.head.append(script);
    });
    // The same stream, read by Chromium's EventSource and by ours.
    const read = (source) => new Promise((resolve) => {
        const seen = [];
        for (const type of types) {
            source.addEventListener(type, (event) => {
                seen.push([event.type, event.data, event.lastEventId]);
                if (seen.length === count) {
                    source.close();
                    resolve(seen);
                }
            });
        }
    });
    return Promise.all([
        read(new EventSource("/tricky/")),
        read(new SharedEventSource("/tricky/", {transport})),
    ]);
}"""


@pytest.mark.timeout(60)
# "direct" too: a plain EventSource, whose named events it passes on.
@pytest.mark.parametrize("transport", [*TRANSPORTS, "direct"])
def test_it_reads_a_tricky_stream_as_event_source_does(
    transport: str, tmp_path: Path, tabs: OpenTab
) -> None:
    with Server(
        SERVERS["uvicorn-h11"], state=tmp_path / "state", log=tmp_path / "log"
    ) as server:
        tab = tabs("about:blank")
        # The page is the test project's; the script is served as the file.
        tab.route(
            "**/shared-event-source.js",
            lambda route: route.fulfill(
                body=SCRIPT.read_text(), content_type="text/javascript"
            ),
        )
        tab.goto(server.url("/plain/"))
        native, shared = tab.evaluate(
            READ_BOTH,
            {
                "types": EVENT_TYPES,
                "count": len(TRICKY_MESSAGES),
                "transport": transport,
            },
        )
    assert len(native) == len(TRICKY_MESSAGES)
    assert shared == native


@pytest.mark.timeout(60)
def test_a_tab_that_saw_no_event_yet_takes_over_where_the_stream_was(
    start_server: StartServer, tabs: OpenTab
) -> None:
    server = start_server("uvicorn")
    # One event at once, then one every 5 s: the second tab joins, and takes
    # over, between the first two.
    url = f"{server.url}/shared/?interval=5&transport=leader"
    leader = tabs(url)
    leader.wait_for_function("window.sharedEvents.length === 1")
    follower = tabs(url)
    expect(follower.locator("#tabs")).to_have_text("2 tabs")
    assert received(follower) == []
    assert leader_lock_holder(follower) is not None
    leader.close()
    # It resumes after event 1, which it never saw, rather than from the start.
    follower.wait_for_function("window.sharedEvents.length >= 1")
    assert received(follower)[0] == 2


FAIL_BOTH = """async (transport) => {
    const failure = (source) => new Promise((resolve) => {
        source.onerror = () => resolve(source.readyState);
    });
    return Promise.all([
        failure(new EventSource("/no-such-stream/")),
        failure(new SharedEventSource("/no-such-stream/", {transport})),
    ]);
}"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_that_is_not_there_fails_for_good_in_every_tab(
    transport: str, start_server: StartServer, tabs: OpenTab
) -> None:
    server = start_server("uvicorn")
    opened = [tabs(f"{server.url}/shared/?transport={transport}") for _ in range(2)]
    for tab in opened:
        # A 404 is no event stream: EventSource gives up, readyState CLOSED.
        assert tab.evaluate(FAIL_BOTH, transport) == [2, 2]
