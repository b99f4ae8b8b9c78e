"""How the demo site is being served: ASGI or WSGI, by which server."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import metadata

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest

# Checked in this order: a server that hosts another's workers comes first.
_KNOWN_SERVERS = ("daphne", "hypercorn", "gunicorn", "uvicorn")


@dataclass(frozen=True)
class Serving:
    interface: str  # "ASGI" or "WSGI"
    server: str
    server_source: str  # where the server's name came from
    heartbeat: float | None

    @property
    def heartbeat_text(self) -> str:
        if self.heartbeat is None:
            return "off"
        return f"{self.heartbeat:g} s"


def _version(distribution: str) -> str:
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return distribution


def _guess_server(request: HttpRequest, interface: str) -> tuple[str, str]:
    name = os.environ.get("SSE_DEMO_SERVER", "").strip()
    if name:
        if name in _KNOWN_SERVERS:
            name = _version(name)
        return name, "SSE_DEMO_SERVER"
    if interface == "WSGI":
        software = request.META.get("SERVER_SOFTWARE", "")
        if "django.core.management.commands.runserver" in sys.modules:
            return f"Django runserver ({software})", "SERVER_SOFTWARE"
        if software:
            return software, "SERVER_SOFTWARE"
    for module in _KNOWN_SERVERS:
        if module in sys.modules:
            return _version(module), "the loaded modules"
    return "unknown", "nowhere"


def heartbeat() -> float | None:
    """The heartbeat of the demo's streams, in seconds (``None``: off)."""
    value: float | None = getattr(settings, "SSE_DEMO_HEARTBEAT", 15.0)
    return value


def describe(request: HttpRequest) -> Serving:
    """Tell how ``request`` reached Django."""
    interface = "ASGI" if isinstance(request, ASGIRequest) else "WSGI"
    server, source = _guess_server(request, interface)
    return Serving(
        interface=interface,
        server=server,
        server_source=source,
        heartbeat=heartbeat(),
    )
