"""
Presence on Redis: per channel, one hash ``<prefix>:{<channel>}:presence``
whose field is a process and whose value is ``'<expiry ms> <JSON list>'``,
the expiry taken from the server's clock (``lua/presence.lua``). The hash
carries the channel's hash tag, so on a cluster it lives on the channel's
node and a read is one round trip (``TIME`` and ``HGETALL``).

A write of several channels is one pipelined round trip per node that
serves them (one on a single Redis or behind Sentinels); a node that fails
fails its own channels only, which the writer tries again.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import redis

from sse_response.broadcast.base import BroadcastError
from sse_response.broadcast.presence import PresenceStore, PresenceWriteError
from sse_response.broadcast.redis.topology import CONNECTION_ERRORS, Command, moved

if TYPE_CHECKING:
    from sse_response.broadcast.redis.backend import RedisBackend

__all__ = ["RedisPresence"]

_SCRIPT = (resources.files(__package__) / "lua" / "presence.lua").read_text()
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()

_SUFFIX = ":presence"


def parse_records(reply: list[bytes], now_ms: int) -> dict[str, list[Any]]:
    """An HGETALL of a presence hash: the entries not expired, by process."""
    found: dict[str, list[Any]] = {}
    for field, value in zip(reply[::2], reply[1::2], strict=True):
        expiry, _, entries = value.partition(b" ")
        if int(expiry) > now_ms:
            found[field.decode()] = json.loads(entries)
    return found


def _now_ms(reply: list[bytes]) -> int:
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


def _constant(batch: list[Command]) -> Callable[[str], list[Command]]:
    return lambda _: batch


class PresenceNotWritten(BroadcastError, PresenceWriteError):
    """Some channels' records were not written; the others were."""


class RedisPresence(PresenceStore):
    """The presence records of a :class:`RedisBackend`."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.ttl_ms = max(int(backend.presence_ttl * 1000), 1)

    def key(self, channel: str) -> str:
        return self.backend._base(channel) + _SUFFIX

    def _command(
        self, process: str, channel: str, entries: str | None, refresh: bool
    ) -> Command:
        return (
            "EVALSHA",
            _SHA,
            1,
            self.key(channel),
            process,
            self.ttl_ms,
            entries or "",
            "1" if refresh else "0",
        )

    def write(
        self, process: str, records: Mapping[str, str | None], *, refresh: bool
    ) -> None:
        # Each node's batch on its own: one node that fails (down, paused)
        # must not keep this process's records from being renewed on the
        # others, where they would expire after presence_ttl.
        topology = self.backend.topology
        by_node: dict[Any, list[str]] = defaultdict(list)
        failed: list[str] = []
        errors: list[BaseException] = []
        for channel in records:
            try:
                by_node[topology.node_for(channel)].append(channel)
            except (redis.RedisError, *CONNECTION_ERRORS) as exc:
                failed.append(channel)
                errors.append(exc)
        for node, channels in by_node.items():
            try:
                failed.extend(
                    self._write_node(node, process, channels, records, refresh, errors)
                )
            except (redis.RedisError, *CONNECTION_ERRORS) as exc:
                if isinstance(exc, CONNECTION_ERRORS):
                    topology.stale = True
                failed.extend(channels)
                errors.append(exc)
        if failed:
            raise PresenceNotWritten(
                f"Presence of {len(failed)} of {len(records)} channels could not be "
                f"written to Redis ({self.backend.url}): {errors[0]}",
                failed,
            )

    def _write_node(
        self,
        node: Any,
        process: str,
        channels: list[str],
        records: Mapping[str, str | None],
        refresh: bool,
        errors: list[BaseException],
    ) -> list[str]:
        """Write ``channels`` on ``node``; return those refused, errors added."""
        batch = [self._command(process, c, records[c], refresh) for c in channels]
        failed = []
        for channel, reply in zip(channels, self._execute(node, batch), strict=True):
            if isinstance(reply, redis.ResponseError) and moved(reply) is not None:
                # Resharded meanwhile: this one where it lives now.
                retry: list[Command] = [
                    ("SCRIPT", "LOAD", _SCRIPT),
                    self._command(process, channel, records[channel], refresh),
                ]
                try:
                    (reply,) = self.backend.on_node(channel, _constant(retry))[1:]
                except (redis.RedisError, *CONNECTION_ERRORS) as exc:
                    reply = exc
            if isinstance(reply, BaseException):
                failed.append(channel)
                errors.append(reply)
        return failed

    @staticmethod
    def _execute(node: Any, batch: list[Command]) -> list[Any]:
        replies: list[Any] = node.execute(lambda _: batch)
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
            # A server that does not know the script yet: none of it ran.
            replies = node.execute(lambda _: [("SCRIPT", "LOAD", _SCRIPT), *batch])[1:]
        return replies

    def read(self, channel: str) -> dict[str, list[Any]]:
        try:
            now, records = self.backend.on_node(
                channel, lambda _: [("TIME",), ("HGETALL", self.key(channel))]
            )
            for reply in (now, records):
                if isinstance(reply, redis.ResponseError):
                    raise reply
        except redis.RedisError as exc:
            raise BroadcastError(
                f"The presence of {channel!r} could not be read from Redis "
                f"({self.backend.url}): {exc}"
            ) from exc
        return parse_records(records, _now_ms(now))

    def scan(self) -> dict[str, dict[str, list[Any]]]:
        prefix = self.backend.prefix
        pattern = f"{prefix}:{{*}}{_SUFFIX}"
        found: dict[str, dict[str, list[Any]]] = {}
        topology = self.backend.topology
        try:
            if not topology.nodes():
                topology.refresh()  # A cluster's masters are found on first use.
            for node in topology.nodes():
                cursor = b"0"
                keys: list[bytes] = []
                while True:
                    scan: list[Command] = [
                        ("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                    ]
                    (reply,) = node.execute(_constant(scan))
                    if isinstance(reply, redis.ResponseError):
                        raise reply
                    cursor, batch = reply
                    keys.extend(batch)
                    if cursor in (b"0", 0, "0"):
                        break
                for key in keys:
                    channel = key.decode()[len(prefix) + 2 : -len(_SUFFIX) - 1]
                    records = self.read(channel)
                    if records:
                        found[channel] = records
        except (redis.RedisError, *CONNECTION_ERRORS) as exc:
            raise BroadcastError(
                f"Presence could not be read from Redis ({self.backend.url}): {exc}"
            ) from exc
        return dict(sorted(found.items()))
