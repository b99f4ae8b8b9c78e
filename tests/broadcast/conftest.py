"""Fixtures of the broadcast tests: a fresh backend per test, a real redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from sse_response.broadcast import get_backend
from sse_response.broadcast.base import BaseBackend
from tests.broadcast.redis_server import RedisServer

UseBackend = Callable[..., BaseBackend]


@pytest.fixture
def use_memory_backend() -> Iterator[UseBackend]:
    """Make the process's backend a new MemoryBackend with the OPTIONS given."""
    with ExitStack() as stack:

        def use(**options: Any) -> BaseBackend:
            setting = {
                "BACKEND": "sse_response.broadcast.MemoryBackend",
                "OPTIONS": options,
            }
            stack.enter_context(override_settings(SSE_RESPONSE_BROADCAST=setting))
            return get_backend()

        yield use


@pytest.fixture
def memory_backend(use_memory_backend: UseBackend) -> BaseBackend:
    """A new MemoryBackend with the default options."""
    return use_memory_backend()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own (see redis_server.py)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_backend(redis_server: RedisServer) -> Iterator[BaseBackend]:
    """The process's backend: a RedisBackend on this test's redis-server."""
    setting = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": redis_server.url,
        "OPTIONS": {"history": 1000},
    }
    with override_settings(SSE_RESPONSE_BROADCAST=setting):
        yield get_backend()
