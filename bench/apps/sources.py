"""
Event sources for the workload modes of :mod:`workload`, sync and async,
yielding either message dicts or pre-encoded bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from workload import TICK_LIMIT, TICK_SECONDS, record_cleanup


async def async_source(
    mode: str, n: int, token: str, make: Callable[[int], Any]
) -> AsyncIterator[Any]:
    """Yield ``make(i)`` for each event of ``mode``, from async code."""
    if mode == "burst":
        for i in range(n):
            yield make(i)
    elif mode == "first":
        yield make(0)
        await asyncio.sleep(0.05)
        yield make(1)
    elif mode == "hold":
        yield make(0)
        await asyncio.Event().wait()
    elif mode == "tick":
        try:
            for i in range(TICK_LIMIT):
                yield make(i)
                await asyncio.sleep(TICK_SECONDS)
        finally:
            record_cleanup(token)


def sync_source(
    mode: str, n: int, token: str, make: Callable[[int], Any]
) -> Iterator[Any]:
    """Yield ``make(i)`` for each event of ``mode``, from blocking code."""
    if mode == "burst":
        for i in range(n):
            yield make(i)
    elif mode == "first":
        yield make(0)
        time.sleep(0.05)
        yield make(1)
    elif mode == "hold":
        yield make(0)
        # A sync source can only be stopped when it yields, so a held one
        # wakes every second and yields an empty message (a comment line
        # for the libraries that encode; the hold client ignores it).
        while True:
            time.sleep(1.0)
            yield None
    elif mode == "tick":
        try:
            for i in range(TICK_LIMIT):
                yield make(i)
                time.sleep(TICK_SECONDS)
        finally:
            record_cleanup(token)
