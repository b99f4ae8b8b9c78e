"""
The Prometheus metrics (sse_response.metrics) as a real server's /metrics
shows them: under uvicorn and gunicorn gthread in one process
(prometheus_client's default registry), under gunicorn's sync workers in
its multiprocess mode (PROMETHEUS_MULTIPROC_DIR, every worker summed), and
the count of sync sources that never yield after their client left, with
the warning that names them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.clients import Reports, Stream, token, wait_for
from tests.integration.conftest import ServerFactory
from tests.integration.servers import Server

pytestmark = pytest.mark.timeout(90)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client, server: Server) -> Samples:
    response = client.get(server.url("/metrics/"))
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def scrape_until(
    client: httpx.Client,
    server: Server,
    check: Callable[[Samples], bool],
    what: str,
    timeout: float = 10,
) -> Samples:
    """Scrape until ``check`` holds for what was scraped; return that."""

    def scraped() -> Samples | None:
        samples = scrape(client, server)
        return samples if check(samples) else None

    return wait_for(scraped, timeout, what)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def changed(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.mark.parametrize("server_name", ["uvicorn-h11", "gunicorn-gthread"])
def test_the_figures_of_a_server(start_server: ServerFactory, server_name: str) -> None:
    server = start_server.start(server_name)
    with httpx.Client() as client:
        before = scrape(client, server)
        assert value(before, "sse_response_streams_open") == 0
        assert ("sse_response_streams_finished_total", (("reason", "error"),)) in (
            before
        )

        # A stream of 5 events that ends by itself.
        with Stream(client, server.url("/stream/async_iter/?count=5")) as stream:
            assert len(stream.rest()) == 5
        done = scrape_until(
            client,
            server,
            lambda s: (
                changed(
                    before, s, "sse_response_streams_finished_total", reason="completed"
                )
                == 1
            ),
            "the stream to be counted as completed",
        )
        assert changed(before, done, "sse_response_streams_started_total") == 1
        assert changed(before, done, "sse_response_events_sent_total") == 5
        assert changed(before, done, "sse_response_bytes_sent_total") >= 5 * 25
        assert value(done, "sse_response_streams_open") == 0
        assert changed(before, done, "sse_response_stream_duration_seconds_count") == 1

        # One event, then heartbeats only: they are not events.
        t = token()
        url = server.url(f"/stream/sync_iter/?token={t}&count=2&hold=1&heartbeat=0.05")
        with Stream(client, url) as stream:
            stream.next_event()
            stream.wait_comments(3)
            during = scrape(client, server)
            assert value(during, "sse_response_streams_open") == 1
        after = scrape_until(
            client,
            server,
            lambda s: value(s, "sse_response_streams_open") == 0,
            "the stream to be closed",
            10,
        )
        Reports(server.state).release(t)  # its source may end now
        assert changed(done, after, "sse_response_events_sent_total") == 1
        assert (
            changed(
                done, after, "sse_response_streams_finished_total", reason="client_left"
            )
            == 1
        )
        # Nothing labelled by path or channel: only the known label names.
        labels = {
            label
            for (name, pairs) in after
            if name.startswith("sse_response_")
            for label, _ in pairs
        }
        assert labels <= {"reason", "backend", "le"}


def test_gunicorn_workers_summed_in_multiprocess_mode(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # Three sync workers (one request each at a time), with --preload: the
    # metrics are made in the master and go on in each forked worker.
    server = start_server.start(
        "gunicorn-sync",
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(directory),
            "GUNICORN_CMD_ARGS": (
                "--config=python:tests.integration.project.gunicorn_metrics_conf"
            ),
        },
        streams=3,
    )
    reports = Reports(server.state)
    tokens = [token(), token()]
    with httpx.Client() as client:
        with (
            Stream(
                client,
                server.url(f"/stream/async_iter/?token={tokens[0]}&count=3&hold=3"),
            ) as first,
            Stream(
                client,
                server.url(f"/stream/sync_iter/?token={tokens[1]}&count=2&hold=2"),
            ) as second,
        ):
            first.next_event()
            second.next_event()
            # Scraped through the third worker: the other two's streams.
            during = scrape(client, server)
            assert value(during, "sse_response_streams_open") == 2
            assert value(during, "sse_response_events_sent_total") == 2
            assert value(during, "sse_response_streams_started_total") == 2
            for t in tokens:
                reports.release(t)
            assert len(first.rest()) == 2
            assert len(second.rest()) == 1
        after = scrape_until(
            client,
            server,
            lambda s: value(s, "sse_response_streams_open") == 0,
            "both streams to be closed",
            10,
        )
    assert value(after, "sse_response_events_sent_total") == 5
    assert value(after, "sse_response_streams_finished_total", reason="completed") == 2
    assert len(list(directory.glob("*.db"))) > 0


def test_a_sync_source_that_never_yields_after_its_client_left(
    start_server: ServerFactory,
) -> None:
    server = start_server.start("uvicorn-h11")
    reports = Reports(server.state)
    tokens = [token(), token()]
    with httpx.Client() as client:
        for t in tokens:
            with Stream(client, server.url(f"/stuck/?token={t}")) as stream:
                assert stream.next_event().data == "hello"
        # Not yet: the grace before the report (5 s) has not passed.
        assert (
            value(scrape(client, server), "sse_response_lingering_sources_total") == 0
        )
        counted = scrape_until(
            client,
            server,
            lambda s: value(s, "sse_response_lingering_sources_total") == 2,
            "both lingering sources to be counted",
            15,
        )
        assert value(counted, "sse_response_streams_open") == 0
        log = server.log_text()
        # One WARNING for the path (the second source of it is logged at DEBUG).
        assert log.count("has not yielded for") == 1, log
        assert "/stuck/" in log
        assert "sse_response.IDLE" in log
        for t in tokens:
            assert reports.finally_(t) is None
            reports.release(t)
        for t in tokens:
            reports.wait_finally(t, 5)
