"""
Every server, every kind of source: events arrive one by one, as they come.
"""

from __future__ import annotations

import pytest

from tests.integration.clients import Stream, ids, token
from tests.integration.conftest import Served
from tests.integration.project.views import SOURCE_KINDS
from tests.integration.servers import SERVERS

pytestmark = [
    pytest.mark.parametrize("served", list(SERVERS), indirect=True),
    pytest.mark.parametrize("kind", SOURCE_KINDS),
    pytest.mark.timeout(30),
]


def test_first_event_arrives_while_the_source_still_sleeps(
    served: Served, kind: str
) -> None:
    t = token()
    with Stream(
        served.client, served.url(f"/stream/{kind}/?token={t}&count=2&hold=1")
    ) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        first = stream.next_event()
        # The source has not gone past its first yield: it waits for us.
        assert served.reports.finally_(t) is None
        assert (first.type, first.data, first.last_event_id) == ("tick", "1", "1")
        served.reports.release(t, 1)
        assert stream.next_event().data == "2"
        assert stream.rest() == []
    assert served.reports.wait_finally(t, 5).sent == 2


def test_an_endless_stream_flows(served: Served, kind: str) -> None:
    t = token()
    with Stream(
        served.client, served.url(f"/stream/{kind}/?token={t}&interval=0.002")
    ) as stream:
        events = stream.events(200)
    assert ids(events) == [str(n) for n in range(1, 201)]
    served.reports.wait_finally(t, 5)


def test_last_event_id_resumes(served: Served, kind: str) -> None:
    t = token()
    url = served.url(f"/stream/{kind}/?token={t}&count=3")
    with Stream(served.client, url, headers={"Last-Event-ID": "41"}) as stream:
        events = stream.rest()
    assert ids(events) == ["42", "43", "44"]
    assert [event.data for event in events] == ["42", "43", "44"]


def test_heartbeats_arrive_while_the_source_is_idle(served: Served, kind: str) -> None:
    t = token()
    url = served.url(f"/stream/{kind}/?token={t}&count=2&hold=1&heartbeat=0.1")
    with Stream(served.client, url) as stream:
        assert stream.next_event().data == "1"
        comments = stream.wait_comments(3)
        assert set(comments) == {""}  # heartbeats are empty comments
        served.reports.release(t, 1)
        assert stream.next_event().data == "2"
    served.reports.wait_finally(t, 5)
