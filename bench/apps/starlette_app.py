"""sse-starlette's EventSourceResponse over an async generator of message dicts."""

from __future__ import annotations

from sources import async_source
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from workload import message, params


async def stream(request: Request) -> EventSourceResponse:
    """Stream the workload named by the query string."""
    mode, n, token = params(request.url.query)
    # sep="\n": the same bytes as every other row (its default is CRLF).
    return EventSourceResponse(async_source(mode, n, token, message), sep="\n")


app = Starlette(routes=[Route("/stream/", stream)])
