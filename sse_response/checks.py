"""
System checks (``manage.py check``) of the settings the library reads.

Each check names the setting and the bad value. Ids: ``sse_response.E001``
to ``E009`` for the response's settings, ``E010`` to ``E029`` for
``SSE_RESPONSE_BROADCAST``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

__all__ = ["check_settings"]


@register()
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check every ``SSE_RESPONSE_*`` setting that is set."""
    errors: list[CheckMessage] = []
    errors.extend(_check_max_sync_streams())
    errors.extend(_check_end_streams_on_signals())
    return errors


def _check_max_sync_streams() -> list[CheckMessage]:
    name = "SSE_RESPONSE_MAX_SYNC_STREAMS"
    if not hasattr(settings, name):
        return []
    value = getattr(settings, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return [
            Error(
                f"{name} must be a non-negative int, not {value!r}.",
                hint="It is how many sync sources may run at once in a process "
                "(default 1000); 0 refuses every sync source.",
                id="sse_response.E001",
            )
        ]
    return []


def _check_end_streams_on_signals() -> list[CheckMessage]:
    name = "SSE_RESPONSE_END_STREAMS_ON_SIGNALS"
    if not hasattr(settings, name):
        return []
    value = getattr(settings, name)
    if not isinstance(value, bool):
        return [
            Error(
                f"{name} must be True or False, not {value!r}.",
                hint="True (the default) makes SIGTERM and SIGINT end open "
                "streams before the server's own handlers run.",
                id="sse_response.E002",
            )
        ]
    return []
