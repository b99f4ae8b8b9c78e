"""
One subscribed stream: subscribe first, then replay what the client missed
up to where live delivery starts, then live events with those already sent
left out; a ``stream-reset`` event wherever history cannot fill a gap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from sse_response import metrics, signals
from sse_response.broadcast.base import BroadcastError, Snapshot
from sse_response.broadcast.hub import EPOCH, EVENT, GAP, RENAME, Item, Subscriber
from sse_response.broadcast.positions import (
    channel_tag,
    format_event_id,
    page_covers,
    plan_resume,
)
from sse_response.broadcast.presence import wait_written
from sse_response.encoding import EncodedMessage

if TYPE_CHECKING:
    from sse_response.broadcast.base import BaseBackend

__all__ = ["RESET_EVENT", "Subscription"]

logger = logging.getLogger("sse_response.broadcast")

#: The event type that tells a client it missed events that cannot be given.
RESET_EVENT = "stream-reset"

#: How many stored events one round trip of a replay reads.
REPLAY_PAGE = 500

#: The reconnection hint a stream ends with when the layer ends it (too slow
#: a client, ``end_streams()``, a backend out of reach).
END_RETRY_MS = 1000


class _Cursor:
    """A stream's position on each of its channels, and the id it makes."""

    __slots__ = ("_id_line", "channels", "epochs", "index", "positions", "tags")

    def __init__(self, channels: tuple[str, ...]) -> None:
        self.channels = channels
        self.tags = [channel_tag(channel) for channel in channels]
        self.index = {channel: i for i, channel in enumerate(channels)}
        self.epochs: list[str] = []
        self.positions: list[int] = []
        self._id_line: bytes | None = None

    @property
    def event_id(self) -> str:
        return format_event_id(self.epochs, self.tags, self.positions)

    def move(self, index: int, position: int) -> None:
        self.positions[index] = position
        self._id_line = None

    def rename(self, index: int, epoch: str) -> None:
        self.epochs[index] = epoch
        self._id_line = None

    def frame(self, payload: bytes) -> bytes:
        """``payload`` behind the ``id:`` line of the current position."""
        id_line = self._id_line
        if id_line is None:
            id_line = self._id_line = b"id: %s\n" % self.event_id.encode()
        return id_line + payload

    def reset(self, indexes: list[int]) -> dict[str, Any]:
        self._id_line = None
        return {
            "id": self.event_id,
            "event": RESET_EVENT,
            "data": {"channels": [self.channels[i] for i in indexes]},
        }


class Subscription:
    """
    The event stream of ``channels``; :meth:`events` is what
    :func:`~sse_response.broadcast.subscribe` returns.
    """

    def __init__(
        self,
        channels: tuple[str, ...],
        backend: BaseBackend | None,
        presence: str | None = None,
        announce: bool = False,
    ) -> None:
        self.channels = channels
        self._backend = backend
        #: The JSON of the stream's presence info, and whether its join and
        #: leave are announced on its channels.
        self._presence = presence
        self._announce = announce

    def __repr__(self) -> str:
        return f"<Subscription to {', '.join(self.channels)}>"

    async def events(
        self, last_event_id: str | None
    ) -> AsyncGenerator[EncodedMessage | dict[str, Any], None]:
        """Replay what the client missed since ``last_event_id``, then go on live."""
        from sse_response.broadcast.backends import get_backend

        backend = self._backend or get_backend()
        subscriber = Subscriber(self.channels, backend.buffer)
        try:
            snapshot = await backend.attach(subscriber)
        except BaseException as exc:
            # Cancelled (the client left) or failed while subscribing: the
            # hub must not keep it.
            backend.detach(subscriber)
            if not isinstance(exc, BroadcastError):
                raise
            logger.warning(
                "A stream of %s could not subscribe (%s); its client will retry.",
                ", ".join(self.channels),
                exc,
            )
            signals.report_end("error")
            yield {"retry_ms": END_RETRY_MS}
            return
        # Present from here, in every process, before the first event.
        presence, written = backend.presence.join(
            self.channels, self._presence, self._announce
        )
        try:
            await wait_written(written)
            async for message in self._run(
                backend, subscriber, snapshot, last_event_id
            ):
                if isinstance(message, dict) and message.get("event") == RESET_EVENT:
                    await signals.asend_stream_reset(
                        message["data"]["channels"], sender=Subscription
                    )
                yield message
        finally:
            backend.detach(subscriber)
            backend.presence.leave(presence)

    async def _run(
        self,
        backend: BaseBackend,
        subscriber: Subscriber,
        snapshot: Snapshot,
        last_event_id: str | None,
    ) -> AsyncGenerator[EncodedMessage | dict[str, Any], None]:
        starts = snapshot.starts
        cursor = _Cursor(self.channels)
        plan = plan_resume(last_event_id, cursor.tags, snapshot.lineages, starts)
        cursor.epochs = plan.epochs
        cursor.positions = plan.positions
        if plan.reset:
            yield cursor.reset(plan.reset)
        for index, after in enumerate(plan.replay_from):
            if after is not None:
                async for message in self._replay(
                    backend, cursor, index, starts[index], quiet=index in plan.reset
                ):
                    yield message
        hub = backend.hub
        while True:
            items = await hub.take(subscriber)
            if items is None:
                # Too slow: its client reconnects and replays.
                signals.report_end("too_slow")
                yield {"retry_ms": END_RETRY_MS}
                return
            if metrics.enabled():
                _observe_lag(items)
            frames: list[bytes] = []
            for kind, channel, seq, payload, _published in items:
                index = cursor.index[channel]
                if kind == EVENT:
                    position = cursor.positions[index]
                    if seq <= position:
                        continue  # Sent already, by the replay.
                    if seq > position + 1:
                        # Not contiguous: fill the hole from history.
                        if frames:
                            yield EncodedMessage(b"".join(frames))
                            frames = []
                        async for message in self._replay(
                            backend, cursor, index, seq - 1, quiet=False
                        ):
                            yield message
                        if seq <= cursor.positions[index]:
                            continue
                    cursor.move(index, seq)
                    if payload is None:
                        # end_streams(): its client reconnects, and the view
                        # decides again whether it may listen.
                        if frames:
                            yield EncodedMessage(b"".join(frames))
                        signals.report_end("ended")
                        yield {"retry_ms": END_RETRY_MS}
                        return
                    assert isinstance(payload, bytes)
                    frames.append(cursor.frame(payload))
                    continue
                if frames:
                    yield EncodedMessage(b"".join(frames))
                    frames = []
                if kind == RENAME:
                    # The channel goes on in a new epoch that holds positions
                    # up to seq: a stream that sent more has sent what was lost.
                    assert isinstance(payload, str)
                    cursor.rename(index, payload)
                    if cursor.positions[index] > seq:
                        cursor.move(index, seq)
                        yield cursor.reset([index])
                elif kind == EPOCH:
                    assert isinstance(payload, str)
                    cursor.rename(index, payload)
                    cursor.move(index, seq)
                    yield cursor.reset([index])
                elif kind == GAP and seq > cursor.positions[index]:
                    cursor.move(index, seq)
                    yield cursor.reset([index])
            if frames:
                yield EncodedMessage(b"".join(frames))

    async def _replay(
        self,
        backend: BaseBackend,
        cursor: _Cursor,
        index: int,
        until: int,
        *,
        quiet: bool,
    ) -> AsyncGenerator[EncodedMessage | dict[str, Any], None]:
        """
        Send the stored events of channel ``index`` after the cursor's
        position, up to ``until`` at least; a reset first if history no
        longer holds what follows the position (unless ``quiet``: a reset of
        every channel was just sent).
        """
        channel = cursor.channels[index]
        first_page = True
        while True:
            position = cursor.positions[index]
            page = await backend.read(channel, position, REPLAY_PAGE)
            entries = page.entries
            if first_page:
                first_page = False
                first_seq = entries[0][0] if entries else None
                covered = page_covers(position, first_seq, page.last_seq)
                if not covered and not (quiet and first_seq is not None):
                    # Live delivery covers what comes after ``until``. A
                    # position the channel never reached is worth nothing:
                    # what was stored since ``until`` (the read may see more
                    # than the live start did) still has to come.
                    if position > page.last_seq:
                        position = until
                    cursor.move(index, max(until, position))
                    if not quiet:
                        yield cursor.reset([index])
                    return
            frames = []
            for seq, payload in entries:
                if seq <= cursor.positions[index]:
                    continue
                cursor.move(index, seq)
                if payload is not None:  # An old end_streams() order: skipped.
                    frames.append(cursor.frame(payload))
            if frames:
                yield EncodedMessage(b"".join(frames))
            if len(entries) < REPLAY_PAGE or cursor.positions[index] >= until:
                return


def _observe_lag(items: list[Item]) -> None:
    """
    Record the publish-to-send lag of the oldest live event that a stream
    takes at once: one observation per chunk, not per event, keeps the cost
    of the metric off the per-event path of a large fan-out.
    """
    for kind, _channel, _seq, _payload, published in items:
        if kind == EVENT and published:
            metrics.observe_lag(max(time.time() - published, 0.0))
            return
