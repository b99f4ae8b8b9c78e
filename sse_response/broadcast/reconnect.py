"""
How a backend's background thread comes back after losing its service: the
pauses between attempts (from 50 ms, doubling, at most 0.5 s) and what it
logs (one warning when the connection is lost, one when it is back, however
many attempts lie between). The PostgreSQL listener and the Redis reader
both use it.
"""

from __future__ import annotations

import logging
import time

from sse_response import metrics

__all__ = ["FIRST_PAUSE", "LONGEST_PAUSE", "Reconnection"]

logger = logging.getLogger("sse_response.broadcast")

#: The first and the longest pause before connecting again.
FIRST_PAUSE, LONGEST_PAUSE = 0.05, 0.5


class Reconnection:
    """
    The state of one connection to ``service`` (a name for the logs) of the
    broadcast backend ``backend`` (its label in the metrics).
    """

    __slots__ = ("backend", "down", "pause", "retry_at", "service")

    def __init__(self, service: str, backend: str) -> None:
        self.service = service
        #: The backend's label in the metrics (``"redis"``, ``"postgres"``).
        self.backend = backend
        self.pause = FIRST_PAUSE
        #: Whether the connection is lost and not back yet.
        self.down = False
        #: When the next attempt is due (``time.monotonic()``).
        self.retry_at = 0.0

    def lost(self, connection: str, error: BaseException) -> float:
        """
        The ``connection`` (what it is for) failed with ``error``: log it if
        it was up, and return how long to wait before the next attempt.
        """
        if not self.down:
            self.down = True
            logger.warning(
                "Lost the %s connection to %s (%s); reconnecting.",
                connection,
                self.service,
                error,
            )
        pause = self.pause
        self.pause = min(pause * 2, LONGEST_PAUSE)
        self.retry_at = time.monotonic() + pause
        return pause

    def back(self) -> None:
        """The connection is made again."""
        if self.down:
            self.down = False
            logger.warning("Reconnected to %s.", self.service)
            metrics.backend_reconnected(self.backend)
        self.pause = FIRST_PAUSE
        self.retry_at = 0.0

    def due(self, now: float) -> bool:
        """Whether an attempt may be made at ``now``."""
        return now >= self.retry_at
