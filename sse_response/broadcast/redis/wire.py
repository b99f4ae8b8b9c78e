"""
What the RedisBackend reads from Redis, parsed: history entries, a channel's
meta hash, and published messages. Pure: no I/O.
"""

from __future__ import annotations

from sse_response.broadcast.base import Entry
from sse_response.broadcast.positions import Lineage

__all__ = ["entries", "meta_position", "parse_message"]


def entries(raw: list[tuple[bytes, list[bytes]]]) -> list[Entry]:
    """History entries as the hub takes them: (seq, payload or None to end)."""
    found: list[Entry] = []
    for stream_id, fields in raw:
        seq = int(stream_id.rpartition(b"-")[2])
        kind = fields[0] if fields else b"p"
        found.append((seq, fields[1] if kind == b"p" else None))
    return found


def meta_position(reply: list[bytes | None]) -> tuple[int, Lineage]:
    """A channel's last sequence number and lineage, from its meta hash."""
    epoch, seq, base, prev = reply
    if epoch is None:
        # Nothing was stored for it (or its history was lost).
        return 0, Lineage("")
    return int(seq or 0), Lineage(
        epoch.decode(), int(base or 0), None if prev is None else prev.decode()
    )


def parse_message(data: bytes) -> tuple[int, Lineage, bytes | None, float]:
    """
    A published message: its sequence number, lineage, payload and time of
    publishing (0.0 from a publisher that did not say).
    """
    header, _, payload = data.partition(b"\n")
    seq, epoch, base, prev, kind, *published = header.split(b" ")
    return (
        int(seq),
        Lineage(epoch.decode(), int(base), prev.decode()),
        payload if kind == b"p" else None,
        float(published[0]) if published else 0.0,
    )
