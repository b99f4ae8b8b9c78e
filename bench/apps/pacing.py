"""
The many-channel publisher's schedule (bench/channels.py): events at a fixed
rate, each to a random channel ``u<i>``, each carrying its number, its time
of publishing and its channel, ``{"n": n, "at": time.time(), "c": i}``.

Event k (from 0) is due ``k / rate`` seconds after the start; a publisher
that falls behind publishes back to back until it is on time again, and the
result says by how much it was late at worst. One that is still publishing
at three times ``seconds`` stops there (the result says how many it
published). The same schedule runs in a
thread (``run``: the memory row's thread in the server process, and the
publisher processes) or on an event loop (``arun``: Channels' ``group_send``).

Standard library only: every venv of the bench imports it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

#: ``publish(channel_number, data)``; ``data`` is a dict, JSON-ready.
Publish = Callable[[int, dict[str, Any]], object]
APublish = Callable[[int, dict[str, Any]], Awaitable[object]]
#: A publisher still publishing at this many times its ``seconds`` stops.
GIVE_UP = 3.0


def _events(
    first: int, channels: int, rate: float, seconds: float, seed: int, number: int
) -> Iterator[tuple[float, int, int]]:
    """(due offset in seconds, channel, event number) of every event."""
    pick = random.Random(seed)
    for k in range(int(rate * seconds)):
        yield k / rate, first + pick.randrange(channels), number + k


def _result(counts: dict[int, int], started: float, late: float) -> dict[str, Any]:
    return {
        "published": sum(counts.values()),
        "counts": {str(c): n for c, n in counts.items()},
        "seconds": time.monotonic() - started,
        "late_ms_max": round(late * 1000, 1),
    }


def run(
    publish: Publish,
    first: int,
    channels: int,
    rate: float,
    seconds: float,
    seed: int = 1,
    number: int = 1,
) -> dict[str, Any]:
    """
    Publish ``rate * seconds`` events to channels ``first`` to
    ``first + channels - 1``, numbered from ``number``. Return how many went
    to each channel and how late the publisher was at worst.
    """
    counts: dict[int, int] = {}
    late = 0.0
    started = time.monotonic()
    for due, channel, n in _events(first, channels, rate, seconds, seed, number):
        wait = started + due - time.monotonic()
        if due + wait > GIVE_UP * seconds:
            break
        if wait > 0:
            time.sleep(wait)
        else:
            late = max(late, -wait)
        publish(channel, {"n": n, "at": time.time(), "c": channel})
        counts[channel] = counts.get(channel, 0) + 1
    return _result(counts, started, late)


async def arun(
    publish: APublish,
    first: int,
    channels: int,
    rate: float,
    seconds: float,
    seed: int = 1,
    number: int = 1,
) -> dict[str, Any]:
    """:func:`run` on an event loop, for an async ``publish``."""
    counts: dict[int, int] = {}
    late = 0.0
    started = time.monotonic()
    for due, channel, n in _events(first, channels, rate, seconds, seed, number):
        wait = started + due - time.monotonic()
        if due + wait > GIVE_UP * seconds:
            break
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            late = max(late, -wait)
        await publish(channel, {"n": n, "at": time.time(), "c": channel})
        counts[channel] = counts.get(channel, 0) + 1
    return _result(counts, started, late)
