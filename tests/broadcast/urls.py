"""Views that publish, for the in-process tests (see test_memory.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from sse_response import EventStreamHttpResponse
from sse_response.broadcast import apublish, publish, subscribe


def publish_sync(request: HttpRequest, channel: str) -> HttpResponse:
    return HttpResponse(publish(channel, {"data": {"n": int(request.GET["n"])}}))


async def publish_async(request: HttpRequest, channel: str) -> HttpResponse:
    return HttpResponse(await apublish(channel, {"data": {"n": int(request.GET["n"])}}))


def stream(request: HttpRequest, channel: str) -> EventStreamHttpResponse:
    return EventStreamHttpResponse(subscribe(channel), request=request, heartbeat=0.1)


urlpatterns = [
    path("publish/<str:channel>/", publish_sync),
    path("apublish/<str:channel>/", publish_async),
    path("stream/<str:channel>/", stream),
]
