"""
Presence on PostgreSQL: one row of ``sse_response_presence`` per channel
and process (the app's migration makes the table), holding the JSON list
of that process's streams and an expiry from the database's clock. A write
of any number of channels is one statement; a read of a channel is one
query on its rows not expired; a refresh also deletes the expired rows of
the processes that stopped writing.

Queries run on the backend's own query connection (autocommit), so they are
never part of a caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sse_response.broadcast.presence import PresenceStore

if TYPE_CHECKING:
    from sse_response.broadcast.postgres import PostgresBackend

__all__ = ["PostgresPresence"]

# The channels whose entries are NULL lose this process's row; the others
# get it with a new expiry; on a refresh the rows of other processes that
# expired go.
_WRITE = """
WITH records AS (
    SELECT * FROM unnest(%(channels)s::text[], %(entries)s::text[])
        AS r(channel, entries)
), gone AS (
    DELETE FROM sse_response_presence p USING records r
    WHERE p.process = %(process)s AND p.channel = r.channel AND r.entries IS NULL
), expired AS (
    DELETE FROM sse_response_presence
    WHERE %(refresh)s AND expires < now() AND process <> %(process)s
)
INSERT INTO sse_response_presence AS p (channel, process, expires, entries)
SELECT channel, %(process)s, now() + %(ttl)s * interval '1 second', entries
FROM records WHERE entries IS NOT NULL
ON CONFLICT (channel, process)
DO UPDATE SET expires = EXCLUDED.expires, entries = EXCLUDED.entries
"""

_READ = """
SELECT process, entries FROM sse_response_presence
WHERE channel = %s AND expires > now()
"""

_SCAN = """
SELECT channel, process, entries FROM sse_response_presence
WHERE expires > now() ORDER BY channel, process
"""


class PostgresPresence(PresenceStore):
    """The presence records of a :class:`PostgresBackend`."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend

    def write(
        self, process: str, records: Mapping[str, str | None], *, refresh: bool
    ) -> None:
        if not records:
            return
        self.backend._query(
            _WRITE,
            {  # type: ignore[arg-type]
                "channels": list(records),
                "entries": list(records.values()),
                "process": process,
                "refresh": refresh,
                "ttl": self.backend.presence_ttl,
            },
        )

    def read(self, channel: str) -> dict[str, list[Any]]:
        rows = self.backend._query(_READ, [channel])
        return {process: json.loads(entries) for process, entries in rows}

    def scan(self) -> dict[str, dict[str, list[Any]]]:
        found: dict[str, dict[str, list[Any]]] = {}
        for channel, process, entries in self.backend._query(_SCAN, []):
            found.setdefault(channel, {})[process] = json.loads(entries)
        return found
