"""
The process's broadcast backend, made from ``SSE_RESPONSE_BROADCAST`` the
way Django makes cache backends from ``CACHES``.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from sse_response.broadcast.base import BaseBackend

__all__ = ["DEFAULT_SETTING", "SETTING", "get_backend", "load_backend"]

SETTING = "SSE_RESPONSE_BROADCAST"
DEFAULT_SETTING: dict[str, Any] = {"BACKEND": "sse_response.broadcast.MemoryBackend"}

_lock = threading.Lock()
_backend: BaseBackend | None = None
_backend_pid = 0


def load_backend(params: dict[str, Any]) -> BaseBackend:
    """Make the backend that ``params`` (a value of the setting) describes."""
    backend_class = import_string(params["BACKEND"])
    backend: BaseBackend = backend_class(params.get("LOCATION"), params)
    return backend


def get_backend() -> BaseBackend:
    """
    The backend of this process, made on first use. A process forked after
    that (gunicorn's ``--preload``) makes its own: threads and connections
    do not survive a fork.
    """
    global _backend, _backend_pid
    backend = _backend
    if backend is not None and _backend_pid == os.getpid():
        return backend
    with _lock:
        if _backend is None or _backend_pid != os.getpid():
            _backend = load_backend(getattr(settings, SETTING, DEFAULT_SETTING))
            _backend_pid = os.getpid()
        return _backend


@atexit.register
def _leave_at_exit() -> None:
    # The presence writer is a daemon thread, stopped wherever it is when
    # the interpreter exits: the process's streams leave in one last write
    # instead of lingering until presence_ttl (every deploy would count
    # each stream twice for that long).
    backend = _backend
    if backend is not None and _backend_pid == os.getpid():
        backend.close_presence()


def reset_backend() -> None:
    """Close the backend; the next use makes a new one from the settings."""
    global _backend
    with _lock:
        backend, _backend = _backend, None
    if backend is not None:
        backend.close_presence()
        backend.close()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING:
        reset_backend()


setting_changed.connect(_setting_changed)
