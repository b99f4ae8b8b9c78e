"""
The event ids of broadcast streams: a stream's position on every channel it
subscribed to, written into each event's ``id:`` and read back from the
client's ``Last-Event-ID``.

An id is ``<epoch>.<tag><seq>[.<tag><seq>...]``: the backend's epoch (it
changes when the backend loses its history), then for each channel of the
stream an 8-character tag (a hash of the channel's name) followed by the
sequence number of the last event of that channel the client has. Tags keep
ids short whatever the channel names, and let a stream whose view subscribes
to a different set of channels than last time still find its positions.

Everything here is pure (no I/O, no clock, no Django): the parsing of
hostile values and the decisions of a resume are tested on their own.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "MAX_ID_LENGTH",
    "InvalidChannelError",
    "ResumePlan",
    "channel_tag",
    "check_channel",
    "format_event_id",
    "new_epoch",
    "page_covers",
    "parse_event_id",
    "plan_resume",
]

#: The longest channel name accepted.
MAX_CHANNEL_LENGTH = 200

#: A ``Last-Event-ID`` longer than this is not read at all (a stream of 200
#: channels writes ids of about 4 KB).
MAX_ID_LENGTH = 8192

#: The largest sequence number read from an id (Redis stream ids are 64-bit).
MAX_SEQ = 2**63 - 1

_CHANNEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@/+=-]*")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PART = re.compile(r"([A-Za-z0-9_-]{8})([0-9]{1,19})")
TAG_LENGTH = 8


class InvalidChannelError(ValueError):
    """A channel name that cannot be used; the message names it."""


def check_channel(channel: object) -> str:
    """
    Return ``channel`` if it is a valid channel name, else raise
    :class:`InvalidChannelError`.

    A name is 1 to 200 ASCII letters, digits and ``_ . : @ / + = -``, not
    starting with a punctuation mark other than ``_``: it is safe in a Redis
    key, a URL and a log line.
    """
    if not isinstance(channel, str):
        raise InvalidChannelError(
            f"A channel name must be a str, not {type(channel).__name__} "
            f"({channel!r:.100})."
        )
    if not 0 < len(channel) <= MAX_CHANNEL_LENGTH or not _CHANNEL.fullmatch(channel):
        raise InvalidChannelError(
            f"Invalid channel name {channel!r:.250}: a channel name is 1 to "
            f"{MAX_CHANNEL_LENGTH} ASCII letters, digits and _ . : @ / + = - "
            "(starting with a letter, a digit or _)."
        )
    return channel


def channel_tag(channel: str) -> str:
    """The 8 characters that stand for ``channel`` in event ids."""
    digest = hashlib.blake2b(channel.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()


def new_epoch(random_bytes: bytes) -> str:
    """An epoch token made of ``random_bytes`` (6 give 8 characters)."""
    return base64.urlsafe_b64encode(random_bytes).decode().rstrip("=")


def format_event_id(epoch: str, tags: Sequence[str], positions: Sequence[int]) -> str:
    """The id of an event: ``epoch`` and the position on each tagged channel."""
    return ".".join(
        [
            epoch,
            *(
                f"{tag}{position}"
                for tag, position in zip(tags, positions, strict=True)
            ),
        ]
    )


@dataclass(frozen=True)
class ParsedId:
    """What a readable ``Last-Event-ID`` says: the epoch and a seq per tag."""

    epoch: str
    positions: dict[str, int] = field(default_factory=dict)


def parse_event_id(value: str) -> ParsedId | None:
    """
    Read an id that :func:`format_event_id` wrote; return ``None`` for
    anything else (too long, not ASCII, malformed, a tag twice, a sequence
    number too large). Never raises for a ``str``.
    """
    if len(value) > MAX_ID_LENGTH or not value.isascii():
        return None
    epoch, _, rest = value.partition(".")
    if not _TOKEN.fullmatch(epoch):
        return None
    positions: dict[str, int] = {}
    if not rest:
        return None
    for part in rest.split("."):
        match = _PART.fullmatch(part)
        if match is None:
            return None
        tag, digits = match.groups()
        seq = int(digits)
        if seq > MAX_SEQ or tag in positions:
            return None
        positions[tag] = seq
    return ParsedId(epoch, positions)


@dataclass
class ResumePlan:
    """
    How a stream starts, given what its client had.

    ``positions`` is where the stream stands on each channel before anything
    is sent; ``replay_from`` holds, for each channel, the position to replay
    history from (``None``: nothing to replay); ``reset`` lists the indexes
    of the channels whose history cannot be given, for which the stream
    first sends a ``stream-reset`` event; ``gap_is_reset`` says that the
    reset was sent for every channel replayed, so that history trimmed since
    the new epoch began calls for no second one.
    """

    epoch: str
    positions: list[int]
    replay_from: list[int | None]
    reset: list[int]
    gap_is_reset: bool = False


def plan_resume(
    last_event_id: str | None,
    tags: Sequence[str],
    epoch: str,
    starts: Sequence[int],
) -> ResumePlan:
    """
    Decide how a stream of the channels ``tags`` starts.

    ``epoch`` is the backend's epoch now, and ``starts`` the position on each
    channel after which every event reaches the stream live.

    * No id (a first connection): live from ``starts``.
    * An unreadable id: a reset of every channel, then live.
    * An id of another epoch (the backend lost its history since): a reset
      of the channels it names, then everything the new epoch still holds
      of them.
    * Otherwise each channel the id names is replayed from its position;
      a channel it does not name (the view subscribes to more channels than
      last time) starts live, as nothing was missed on it. Channels the id
      names that the stream does not subscribe to are ignored.
    """
    count = len(tags)
    live = ResumePlan(epoch, list(starts), [None] * count, [])
    if last_event_id is None:
        return live
    parsed = parse_event_id(last_event_id)
    if parsed is None:
        live.reset = list(range(count))
        return live
    positions = list(starts)
    replay_from: list[int | None] = [None] * count
    if parsed.epoch != epoch:
        reset = [index for index, tag in enumerate(tags) if tag in parsed.positions]
        for index in reset:
            positions[index] = 0
            replay_from[index] = 0
        return ResumePlan(epoch, positions, replay_from, reset, gap_is_reset=True)
    for index, tag in enumerate(tags):
        seq = parsed.positions.get(tag)
        if seq is None:
            continue
        positions[index] = seq
        # A client exactly where the stream starts has missed nothing; one
        # behind must be replayed, and one ahead (it was served by a process
        # whose reader was ahead of this one) must be checked against what
        # the backend stored.
        if seq != starts[index]:
            replay_from[index] = seq
    return ResumePlan(epoch, positions, replay_from, [])


def page_covers(after: int, first_seq: int | None, last_seq: int) -> bool:
    """
    Whether history can be replayed from position ``after``: the first
    stored entry after it (``first_seq``, ``None`` if none) follows it
    directly, or nothing was stored after it and it is the last sequence
    number the channel assigned (``last_seq``): behind it, what followed was
    trimmed; beyond it, the position was never assigned.
    """
    if first_seq is None:
        return after == last_seq
    return first_seq == after + 1
