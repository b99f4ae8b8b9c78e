"""
The event ids of broadcast streams: a stream's position on every channel it
subscribed to, written into each event's ``id:`` and read back from the
client's ``Last-Event-ID``.

An id is ``<tag><seq>:<epoch>[.<tag><seq>[:<epoch>]...]``: for each channel
of the stream an 8-character tag (a hash of the channel's name), the
sequence number of the last event of that channel the client has, and the
channel's epoch (it changes when the channel's history may have been lost),
which a part leaves out when it is the previous part's. Tags keep ids short
whatever the channel names, and let a stream whose view subscribes to a
different set of channels than last time still find its positions; an epoch
per channel lets a backend whose channels live on different servers (a Redis
Cluster) lose one server's history without resetting every channel.

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
    "Lineage",
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
_PART = re.compile(r"([A-Za-z0-9_-]{8})([0-9]{1,19})(?::([A-Za-z0-9_-]{0,64}))?")
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


def format_event_id(
    epochs: Sequence[str], tags: Sequence[str], positions: Sequence[int]
) -> str:
    """
    The id of an event: the position on each tagged channel, in the epoch of
    that channel (written only where it differs from the previous part's).
    """
    parts = []
    previous: str | None = None
    for epoch, tag, position in zip(epochs, tags, positions, strict=True):
        if epoch == previous:
            parts.append(f"{tag}{position}")
        else:
            parts.append(f"{tag}{position}:{epoch}")
            previous = epoch
    return ".".join(parts)


@dataclass(frozen=True)
class Lineage:
    """
    Where the sequence numbers of a channel come from: its ``epoch`` (which
    changes whenever its history may have been lost), and the epoch before
    it, ``prev``, whose positions up to ``base`` hold in this one as well.

    A backend that knows it lost nothing (a Redis that restarted with its
    data, or a replica that took over) starts a new epoch that continues the
    old one from its last sequence number: clients behind that number lose
    nothing, and a client beyond it, whose events were lost, is told. The
    epoch ``""`` is that of a channel nothing was ever stored for.
    """

    epoch: str
    base: int = 0
    prev: str | None = None

    def holds(self, epoch: str, position: int) -> bool:
        """Whether ``position`` in ``epoch`` means the same in this lineage."""
        return epoch == self.epoch or (epoch == self.prev and position <= self.base)


@dataclass(frozen=True)
class ParsedId:
    """What a readable ``Last-Event-ID`` says: an epoch and a seq per tag."""

    positions: dict[str, tuple[str, int]] = field(default_factory=dict)


def parse_event_id(value: str) -> ParsedId | None:
    """
    Read an id that :func:`format_event_id` wrote; return ``None`` for
    anything else (too long, not ASCII, malformed, a tag twice, a sequence
    number too large, the format of an older version). Never raises for a
    ``str``.
    """
    if not value or len(value) > MAX_ID_LENGTH or not value.isascii():
        return None
    positions: dict[str, tuple[str, int]] = {}
    epoch: str | None = None
    for part in value.split("."):
        match = _PART.fullmatch(part)
        if match is None:
            return None
        tag, digits, given = match.groups()
        if given is not None:
            epoch = given
        seq = int(digits)
        if epoch is None or seq > MAX_SEQ or tag in positions:
            return None
        positions[tag] = (epoch, seq)
    return ParsedId(positions)


@dataclass
class ResumePlan:
    """
    How a stream starts, given what its client had.

    ``epochs`` and ``positions`` are where the stream stands on each channel
    before anything is sent; ``replay_from`` holds, for each channel, the
    position to replay history from (``None``: nothing to replay); ``reset``
    lists the indexes of the channels whose history cannot be given, for
    which the stream first sends a ``stream-reset`` event, so that history
    trimmed since calls for no second one.
    """

    epochs: list[str]
    positions: list[int]
    replay_from: list[int | None]
    reset: list[int]


def plan_resume(
    last_event_id: str | None,
    tags: Sequence[str],
    lineages: Sequence[Lineage],
    starts: Sequence[int],
) -> ResumePlan:
    """
    Decide how a stream of the channels ``tags`` starts.

    ``lineages`` is where each channel's numbering stands now, and
    ``starts`` the position on each channel after which every event reaches
    the stream live.

    * No id (a first connection): live from ``starts``.
    * An unreadable id: a reset of every channel, then live.
    * A channel whose position the lineage no longer holds (its history was
      lost since, or the events after it): a reset of it, then everything
      its lineage still holds after what the client keeps.
    * Otherwise each channel the id names is replayed from its position;
      a channel it does not name (the view subscribes to more channels than
      last time) starts live, as nothing was missed on it. Channels the id
      names that the stream does not subscribe to are ignored.
    """
    count = len(tags)
    epochs = [lineage.epoch for lineage in lineages]
    plan = ResumePlan(epochs, list(starts), [None] * count, [])
    if last_event_id is None:
        return plan
    parsed = parse_event_id(last_event_id)
    if parsed is None:
        plan.reset = list(range(count))
        return plan
    for index, (tag, lineage) in enumerate(zip(tags, lineages, strict=True)):
        had = parsed.positions.get(tag)
        if had is None:
            continue
        epoch, seq = had
        if lineage.holds(epoch, seq):
            plan.positions[index] = seq
            # A client exactly where the stream starts has missed nothing;
            # one behind must be replayed, and one ahead (it was served by a
            # process whose reader was ahead of this one) must be checked
            # against what the backend stored.
            if seq != starts[index]:
                plan.replay_from[index] = seq
            continue
        # What the client kept up to the base of a lineage that continues
        # its epoch still holds; beyond it, or in an unrelated epoch, what
        # it had means nothing now.
        kept = lineage.base if epoch == lineage.prev else 0
        plan.reset.append(index)
        plan.positions[index] = kept
        plan.replay_from[index] = kept
    return plan


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
