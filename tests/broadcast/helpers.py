"""What the broadcast tests share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from sse_response import EventStreamHttpResponse
from sse_response.broadcast import apublish, subscribe
from sse_response.broadcast.base import BaseBackend
from sse_response.parsing import ServerSentEvent
from tests.support import WAIT


def streaming(
    *channels: str, **kwargs: Any
) -> Callable[[HttpRequest], EventStreamHttpResponse]:
    """A response factory for tests.views: the stream of ``channels``."""
    kwargs.setdefault("heartbeat", 0.1)

    def factory(request: HttpRequest) -> EventStreamHttpResponse:
        return EventStreamHttpResponse(subscribe(*channels), request=request, **kwargs)

    return factory


async def attached(backend: BaseBackend, count: int) -> None:
    """
    Wait until ``count`` streams listen to ``backend`` in this process, each
    with its start known: every event published from then on reaches them.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while backend.hub.subscriber_count(started=True) != count:
        assert loop.time() < deadline, f"{count} streams never attached"
        await asyncio.sleep(0.005)


def numbers(events: list[ServerSentEvent]) -> list[int]:
    """The ``n`` of each published event (resets left out)."""
    return [
        json.loads(event.data)["n"] for event in events if event.type != "stream-reset"
    ]


def resets(events: list[ServerSentEvent]) -> list[list[str]]:
    return [
        json.loads(event.data)["channels"]
        for event in events
        if event.type == "stream-reset"
    ]


async def publish_numbers(channel: str, numbers_: range) -> list[str]:
    """Publish ``{"n": n}`` as event ``n`` for each n; return their ids."""
    return [await apublish(channel, {"event": "n", "data": {"n": n}}) for n in numbers_]
