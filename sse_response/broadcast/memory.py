"""
MemoryBackend: the history of each channel in this process's memory.

For one process (``make demo``, ``runserver``, a single uvicorn worker, and
tests): no outside service. Events published in one process reach only the
streams of that process, and the history is lost when it exits (a new
process has new epochs, so a client that comes back is told with a
``stream-reset``).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from sse_response.broadcast.base import BaseBackend, Entry, Page, Snapshot
from sse_response.broadcast.hub import Subscriber
from sse_response.broadcast.positions import Lineage, new_epoch

__all__ = ["MemoryBackend"]


class _Log:
    __slots__ = ("entries", "last_seq")

    def __init__(self, history: int) -> None:
        self.entries: deque[Entry] = deque(maxlen=history)
        self.last_seq = 0


class MemoryBackend(BaseBackend):
    """
    Keep the last ``OPTIONS["history"]`` events of each channel in memory.

    Thread-safe: publishers and subscribers may be in any thread or event
    loop of the process. Storing an event and handing it to the hub are one
    step under the hub's lock, so a stream that attaches meanwhile gets the
    event either from history or live, never both and never neither.
    """

    def __init__(self, location: str | None, params: Mapping[str, Any]) -> None:
        super().__init__(location, params)
        self.epoch = new_epoch(os.urandom(6))
        self.lineage = Lineage(self.epoch)
        self._logs: dict[str, _Log] = {}

    def _log(self, channel: str) -> _Log:
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = _Log(self.history)
        return log

    def append(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        with self.hub.lock:
            log = self._log(channel)
            seq = log.last_seq = log.last_seq + 1
            log.entries.append((seq, payload))
            self.hub.deliver(channel, ((seq, payload),), published=time.time())
        return self.epoch, seq

    async def aappend(self, channel: str, payload: bytes | None) -> tuple[str, int]:
        # Nothing here blocks for long: no thread needed.
        return self.append(channel, payload)

    async def attach(self, subscriber: Subscriber) -> Snapshot:
        return self.attach_now(subscriber)

    def attach_now(self, subscriber: Subscriber) -> Snapshot:
        with self.hub.lock:
            for channel in self.hub.add(subscriber):
                self.hub.set_position(
                    channel, self._log(channel).last_seq, self.lineage
                )
            return Snapshot.of(subscriber)

    async def read(self, channel: str, after: int, limit: int) -> Page:
        with self.hub.lock:
            log = self._log(channel)
            entries = log.entries
            skip = 0
            if entries:
                skip = min(max(after + 1 - entries[0][0], 0), len(entries))
            page = list(itertools.islice(entries, skip, skip + limit))
            return Page(page, log.last_seq)
