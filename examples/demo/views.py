"""A minimal page fed by an async event stream."""

import asyncio
import datetime

from django.http import HttpRequest, HttpResponse

from sse_response import EventStreamHttpResponse

PAGE = """<!doctype html>
<title>sse_response demo</title>
<h1>sse_response demo</h1>
<p>Server time: <output id="clock">waiting…</output></p>
<script>
  const source = new EventSource("/clock/");
  source.addEventListener("tick", (event) => {
    document.getElementById("clock").textContent = JSON.parse(event.data).now;
  });
</script>
"""


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


async def clock(request: HttpRequest) -> EventStreamHttpResponse:
    async def ticks(last_event_id: str | None):
        while True:
            now = datetime.datetime.now(datetime.timezone.utc)
            yield {"event": "tick", "data": {"now": now.isoformat(timespec="seconds")}}
            await asyncio.sleep(1)

    return EventStreamHttpResponse(ticks, request=request)
