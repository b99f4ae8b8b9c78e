"""The pure core of broadcast ids: format, parsing of hostile values, resume plans."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sse_response.broadcast.positions import (
    MAX_SEQ,
    InvalidChannelError,
    Lineage,
    channel_tag,
    check_channel,
    format_event_id,
    page_covers,
    parse_event_id,
    plan_resume,
)

epochs = st.text("abcXYZ019_-", min_size=0, max_size=16)
channel_names = st.from_regex(r"[a-z0-9_][a-z0-9_.:@/+=-]{0,30}", fullmatch=True)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            channel_names, st.sampled_from(["", "E1", "E2"]), st.integers(0, MAX_SEQ)
        ),
        min_size=1,
        max_size=20,
        unique_by=lambda triple: triple[0],
    ),
)
def test_an_id_reads_back_as_written(triples: list[tuple[str, str, int]]) -> None:
    tags = [channel_tag(name) for name, _, _ in triples]
    epochs = [epoch for _, epoch, _ in triples]
    positions = [seq for _, _, seq in triples]
    parsed = parse_event_id(format_event_id(epochs, tags, positions))
    assert parsed is not None
    assert parsed.positions == {
        tag: (epoch, seq)
        for tag, epoch, seq in zip(tags, epochs, positions, strict=True)
    }


def test_an_epoch_is_written_only_where_it_changes() -> None:
    tags = [channel_tag(name) for name in "abc"]
    value = format_event_id(["E", "E", "F"], tags, [1, 2, 3])
    assert value == f"{tags[0]}1:E.{tags[1]}2.{tags[2]}3:F"


@given(st.text(max_size=300))
def test_parsing_any_text_never_raises(value: str) -> None:
    parsed = parse_event_id(value)
    if parsed is not None:
        assert parsed.positions
        assert all(0 <= seq <= MAX_SEQ for _, seq in parsed.positions.values())


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "AAAAAAAA1",  # no epoch on the first part
        "AAAAAAAA1:e.",
        "AAAAAAAA1:e..",
        "short1:e",
        "A" * 8 + ":e",  # a tag without a sequence number
        "AAAAAAAA-1:e",
        "AAAAAAAA1:e.AAAAAAAA2",  # the same channel twice
        "AAAAAAAA" + "9" * 20 + ":e",  # beyond 64 bits
        "AAAAAAAA" + str(2**63) + ":e",
        "AAAAAAAA1:é",
        "AAAAAAAA1:e\n",
        "AAAAAAAA1:e:f",
        "AAAAAAAA1:" + "e" * 65,
        "AAAAAAAA1:e." + "B" * 65536,
        "e" * 65536,
        "Ab3dEf9x.AAAAAAAA12",  # the format of sse_response 0.1
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


E = [Lineage("E"), Lineage("E")]


def an_id(epoch: str, **positions: int) -> str:
    return format_event_id(
        [epoch] * len(positions),
        [channel_tag(name) for name in positions],
        list(positions.values()),
    )


def test_a_first_connection_starts_live() -> None:
    plan = plan_resume(None, TAGS, E, [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([5, 7], [None, None], [])
    assert plan.epochs == ["E", "E"]


def test_an_unreadable_id_resets_every_channel_then_goes_live() -> None:
    plan = plan_resume("garbage", TAGS, E, [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == (
        [5, 7],
        [None, None],
        [0, 1],
    )


def test_an_id_of_another_epoch_resets_and_replays_the_new_epoch() -> None:
    plan = plan_resume(an_id("OLD", a=50, b=3), TAGS, E, [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([0, 0], [0, 0], [0, 1])


def test_only_the_channel_whose_epoch_changed_is_reset() -> None:
    lineages = [Lineage("E"), Lineage("NEW")]
    plan = plan_resume(an_id("E", a=2, b=3), TAGS, lineages, [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([2, 0], [2, 0], [1])
    assert plan.epochs == ["E", "NEW"]


def test_a_lineage_that_continues_the_old_epoch_keeps_what_it_holds() -> None:
    # A replica took over with everything up to 6: a client at 4 lost
    # nothing; one at 8 had 7 and 8, which were lost: it is told, and gets
    # what the new epoch stored after 6.
    lineages = [Lineage("NEW", base=6, prev="E")] * 2
    plan = plan_resume(an_id("E", a=4, b=8), TAGS, lineages, [9, 9])
    assert (plan.positions, plan.replay_from, plan.reset) == ([4, 6], [4, 6], [1])
    assert plan.epochs == ["NEW", "NEW"]


def test_a_client_behind_is_replayed_and_one_ahead_is_checked() -> None:
    plan = plan_resume(an_id("E", a=2, b=9), TAGS, E, [5, 7])
    assert (plan.positions, plan.replay_from, plan.reset) == ([2, 9], [2, 9], [])


def test_a_client_where_the_stream_starts_needs_nothing() -> None:
    plan = plan_resume(an_id("E", a=5, b=7), TAGS, E, [5, 7])
    assert plan.replay_from == [None, None]


def test_channels_the_id_does_not_name_start_live_and_others_are_ignored() -> None:
    plan = plan_resume(an_id("E", a=2, secret=99), TAGS, E, [5, 7])
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
