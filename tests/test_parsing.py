"""The spec parser of sse_response.testing, rule by rule (../shared/sse-spec.md)."""

from __future__ import annotations

import pytest

from sse_response.testing import EventStreamParser, ServerSentEvent, parse


def test_p1_one_leading_bom_is_dropped_and_a_second_is_data() -> None:
    assert parse("\ufeffdata: a\n\n".encode()) == [ServerSentEvent("a")]
    assert parse("\ufeff\ufeffdata: a\n\n".encode()) == []  # field "\ufeffdata"
    assert parse("data: \ufeffa\n\n".encode()) == [ServerSentEvent("\ufeffa")]


def test_p1_a_bom_split_across_chunks_is_still_dropped() -> None:
    bom = "\ufeff".encode()
    assert parse([bom[:1], bom[1:] + b"data: a\n\n"]) == [ServerSentEvent("a")]


def test_p1_invalid_utf8_becomes_the_replacement_character() -> None:
    assert parse(b"data: \xff\n\n") == [ServerSentEvent("\ufffd")]


@pytest.mark.parametrize("end", [b"\r\n", b"\n", b"\r"])
def test_p2_lines_end_at_crlf_lf_or_cr(end: bytes) -> None:
    assert parse(b"data: a" + end + b"data: b" + end + end) == [ServerSentEvent("a\nb")]


def test_p2_a_crlf_split_across_chunks_is_one_line_end() -> None:
    assert parse([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [
        ServerSentEvent("a\nb")
    ]


def test_p2_other_separators_do_not_end_lines() -> None:
    text = "data: a\u2028b\x85c\x0bd\x0ce\n\n"
    assert parse(text.encode()) == [ServerSentEvent("a\u2028b\x85c\x0bd\x0ce")]


def test_p5_comments_are_ignored_and_kept() -> None:
    parser = EventStreamParser()
    assert parser.feed(b": hello\n:\ndata: x\n\n") == [ServerSentEvent("x")]
    assert parser.comments == ["hello", ""]


def test_p6_only_one_leading_space_is_removed() -> None:
    assert parse(b"data:  two\n\n") == [ServerSentEvent(" two")]
    assert parse(b"data:\tx\n\n") == [ServerSentEvent("\tx")]


def test_p7_a_line_without_colon_is_a_field_with_empty_value() -> None:
    assert parse(b"data\n\n") == [ServerSentEvent("")]
    assert parse(b"data\ndata\n\n") == [ServerSentEvent("\n")]


def test_p8_p13_field_names_are_case_sensitive_and_unknown_ones_ignored() -> None:
    assert parse(b"Data: x\nfoo: y\n\n") == []


def test_p11_an_id_with_nul_is_ignored() -> None:
    parser = EventStreamParser()
    parser.feed(b"id: 1\ndata: a\n\n")
    [event] = parser.feed(b"id: 2\x00\ndata: b\n\n")
    assert event.last_event_id == "1"


@pytest.mark.parametrize(
    ("value", "retry"), [(b"100", 100), (b"1a", None), (b"", None)]
)
def test_p12_retry_counts_only_when_all_ascii_digits(
    value: bytes, retry: int | None
) -> None:
    parser = EventStreamParser()
    parser.feed(b"retry: " + value + b"\n")
    assert parser.retry == retry


def test_p12_non_ascii_digits_are_not_a_retry() -> None:
    parser = EventStreamParser()
    parser.feed("retry: ١٢\n".encode())
    assert parser.retry is None


def test_d1_the_id_is_committed_even_when_nothing_fires() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 9\n\n") == []
    assert parser.last_event_id == "9"
    [event] = parser.feed(b"data: x\n\n")
    assert event.last_event_id == "9"


def test_d2_a_block_without_data_fires_nothing_and_clears_the_type() -> None:
    assert parse(b"event: a\n\ndata: x\n\n") == [ServerSentEvent("x", "message")]


def test_d6_an_unterminated_event_is_discarded_with_its_id() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 3\ndata: x\n") == []
    parser.close()
    assert parser.last_event_id == ""
    assert parse(b"data: x\n\ndata: y") == [ServerSentEvent("x")]


def test_examples_from_the_standard() -> None:
    assert parse(b"data\n\n") == [ServerSentEvent("")]
    assert parse(b"data\ndata\n\n") == [ServerSentEvent("\n")]
    assert parse(b"data:\n\n") == [ServerSentEvent("")]
