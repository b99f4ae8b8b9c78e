"""Fixtures of the broadcast tests: a fresh MemoryBackend per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from django.test import override_settings

from sse_response.broadcast import get_backend
from sse_response.broadcast.base import BaseBackend

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
