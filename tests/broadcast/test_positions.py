"""The pure core of broadcast ids: format, parsing of hostile values, resume plans."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sse_response.broadcast.positions import (
    MAX_SEQ,
    InvalidChannelError,
    channel_tag,
    check_channel,
    format_event_id,
    page_covers,
    parse_event_id,
    plan_resume,
)

epochs = st.text("abcXYZ019_-", min_size=1, max_size=16)
channel_names = st.from_regex(r"[a-z0-9_][a-z0-9_.:@/+=-]{0,30}", fullmatch=True)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    epochs,
    st.lists(
        st.tuples(channel_names, st.integers(0, MAX_SEQ)),
        min_size=1,
        max_size=20,
        unique_by=lambda pair: pair[0],
    ),
)
def test_an_id_reads_back_as_written(epoch: str, pairs: list[tuple[str, int]]) -> None:
    tags = [channel_tag(name) for name, _ in pairs]
    positions = [seq for _, seq in pairs]
    parsed = parse_event_id(format_event_id(epoch, tags, positions))
    assert parsed is not None
    assert parsed.epoch == epoch
    assert parsed.positions == dict(zip(tags, positions, strict=True))


@given(st.text(max_size=300))
def test_parsing_any_text_never_raises(value: str) -> None:
    parsed = parse_event_id(value)
    if parsed is not None:
        assert parsed.positions
        assert all(0 <= seq <= MAX_SEQ for seq in parsed.positions.values())


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "epoch.",
        "epoch..",
        "e.short1",
        "e." + "A" * 8,  # a tag without a sequence number
        "e.AAAAAAAA-1",
        "e.AAAAAAAA1.AAAAAAAA2",  # the same channel twice
        "e.AAAAAAAA" + "9" * 20,  # beyond 64 bits
        "e.AAAAAAAA" + str(2**63),
        "é.AAAAAAAA1",
        "e.AAAAAAAA1\n",
        "e.AAAAAAAA1." + "B" * 65536,
        "e" * 65536,
    ],
)
def test_unreadable_ids(value: str) -> None:
    assert parse_event_id(value) is None


def test_tags_are_short_and_stable() -> None:
    assert channel_tag("orders") == channel_tag("orders")
    assert channel_tag("orders") != channel_tag("orders2")
    assert len(channel_tag("x" * 200)) == 8


@pytest.mark.parametrize(
    "name", ["orders", "user-42", "room:7", "a/b", "_private", "x" * 200, "a@b.c+d=e"]
)
def test_valid_channel_names(name: str) -> None:
    assert check_channel(name) == name


@pytest.mark.parametrize(
    "name", ["", " ", "a b", "a\nb", "-x", ".x", "x" * 201, "é", "a*", "a,b", 42, None]
)
def test_invalid_channel_names_are_named_in_the_error(name: object) -> None:
    with pytest.raises(InvalidChannelError) as raised:
        check_channel(name)
    assert repr(name)[:50] in str(raised.value)


TAGS = [channel_tag("a"), channel_tag("b")]


def an_id(epoch: str, **positions: int) -> str:
    return format_event_id(
        epoch, [channel_tag(name) for name in positions], list(positions.values())
    )


def test_a_first_connection_starts_live() -> None:
    plan = plan_resume(None, TAGS, "E", [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([5, 7], [None, None], [])


def test_an_unreadable_id_resets_every_channel_then_goes_live() -> None:
    plan = plan_resume("garbage", TAGS, "E", [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == (
        [5, 7],
        [None, None],
        [0, 1],
    )


def test_an_id_of_another_epoch_resets_and_replays_the_new_epoch() -> None:
    plan = plan_resume(an_id("OLD", a=50, b=3), TAGS, "E", [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([0, 0], [0, 0], [0, 1])
    assert plan.gap_is_reset


def test_a_client_behind_is_replayed_and_one_ahead_is_checked() -> None:
    plan = plan_resume(an_id("E", a=2, b=9), TAGS, "E", [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([2, 9], [2, 9], [])


def test_a_client_where_the_stream_starts_needs_nothing() -> None:
    plan = plan_resume(an_id("E", a=5, b=7), TAGS, "E", [5, 7])
    assert plan.replay_from == [None, None]


def test_channels_the_id_does_not_name_start_live_and_others_are_ignored() -> None:
    plan = plan_resume(an_id("E", a=2, secret=99), TAGS, "E", [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([2, 7], [2, None], [])


@pytest.mark.parametrize(
    ("after", "first_seq", "last_seq", "covers"),
    [
        (5, 6, 10, True),  # the next one is there
        (5, 7, 10, False),  # 6 was trimmed
        (10, None, 10, True),  # caught up
        (5, None, 10, False),  # everything after 5 trimmed
        (11, None, 10, False),  # beyond what was ever assigned
        (0, None, 0, True),  # an empty channel
    ],
)
def test_page_covers(
    after: int, first_seq: int | None, last_seq: int, covers: bool
) -> None:
    assert page_covers(after, first_seq, last_seq) is covers
