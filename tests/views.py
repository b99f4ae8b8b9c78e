"""
Views for the tests: each test registers how to build its response under a
key, so one URL serves every scenario through Django's real handlers.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBase

ResponseFactory = Callable[[HttpRequest], HttpResponseBase]

#: What each test wants served, by key.
FACTORIES: dict[str, ResponseFactory] = {}


def stream(request: HttpRequest, key: str) -> HttpResponseBase:
    """A sync view (run in a thread under ASGI)."""
    return FACTORIES[key](request)


async def astream(request: HttpRequest, key: str) -> HttpResponseBase:
    """An async view, as most users of the library write them."""
    return FACTORIES[key](request)


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"plain")
