"""
The encoder, rule by rule (tags refer to ../shared/sse-spec.md), and the
round trip through the spec parser for any message hypothesis can make.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from sse_response import InvalidMessageError, encode
from sse_response.testing import EventStreamParser, ServerSentEvent, parse


def events_of(message: dict[str, Any] | None) -> list[ServerSentEvent]:
    return parse(encode(message))


class TestFields:
    def test_fields_are_written_in_the_order_id_event_data_retry(self) -> None:
        message = {"retry_ms": 123, "data": "d", "event": "e", "id": "i"}
        assert encode(message) == b"id: i\nevent: e\ndata: d\nretry: 123\n\n"

    def test_an_empty_message_is_one_comment_line(self) -> None:
        assert encode(None) == b":\n"
        assert encode({}) == b":\n"
        assert events_of({}) == []

    def test_none_values_count_as_absent(self) -> None:
        message = {"id": None, "event": None, "data": "x", "retry_ms": None}
        assert encode(message) == b"data: x\n\n"
        assert encode({"data": None}) == b":\n"

    def test_an_empty_id_resets_the_last_event_id(self) -> None:
        parser = EventStreamParser()
        parser.feed(encode({"id": "7", "data": "a"}))
        [event] = parser.feed(encode({"id": "", "data": "b"}))
        assert encode({"id": ""}) == b"id:\n\n"
        assert event.last_event_id == ""

    def test_an_id_alone_commits_the_id_without_firing(self) -> None:
        # D1, D2: the blank line commits the id; no data, so nothing fires.
        parser = EventStreamParser()
        assert parser.feed(encode({"id": "5"})) == []
        assert parser.last_event_id == "5"

    def test_integer_ids_are_written_as_text_as_djblets_did(self) -> None:
        assert encode({"id": 5, "data": "x"}) == b"id: 5\ndata: x\n\n"

    def test_an_event_without_data_still_fires(self) -> None:
        assert encode({"event": "done"}) == b"event: done\ndata:\n\n"
        assert events_of({"event": "done"}) == [ServerSentEvent("", "done")]

    def test_retry_is_written_in_milliseconds(self) -> None:
        parser = EventStreamParser()
        parser.feed(encode({"retry_ms": 0}))
        assert parser.retry == 0

    def test_a_comment_is_written_before_the_fields(self) -> None:
        assert encode({"comment": "hi", "data": "x"}) == b": hi\ndata: x\n\n"
        assert encode({"comment": "hi"}) == b": hi\n"

    def test_a_multi_line_comment_stays_a_comment(self) -> None:
        assert encode({"comment": "a\nb\r\ndata: x"}) == b": a\n: b\n: data: x\n"
        assert events_of({"comment": "a\ndata: x\n\n"}) == []

    def test_a_leading_space_in_a_value_survives(self) -> None:
        # P6 removes exactly one space after the colon.
        assert events_of({"data": " x", "event": " e"}) == [ServerSentEvent(" x", " e")]


class TestData:
    @pytest.mark.parametrize(
        ("data", "lines"),
        [
            ("a\nb", [b"data: a", b"data: b"]),
            ("a\r\nb", [b"data: a", b"data: b"]),
            ("a\rb", [b"data: a", b"data: b"]),
            ("a\n", [b"data: a", b"data:"]),
            ("", [b"data:"]),
            ("\n", [b"data:", b"data:"]),
            ("a\r\n\r\nb", [b"data: a", b"data:", b"data: b"]),
        ],
    )
    def test_data_is_split_at_cr_lf_and_crlf_only(
        self, data: str, lines: list[bytes]
    ) -> None:
        assert encode({"data": data}) == b"\n".join(lines) + b"\n\n"

    @pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x0b", "\x0c", "\x85"])
    def test_other_line_separators_are_data(self, separator: str) -> None:
        # P2: str.splitlines() would split here; a client does not.
        data = f"a{separator}b"
        assert events_of({"data": data}) == [ServerSentEvent(data)]

    @pytest.mark.parametrize(
        ("data", "read"),
        [("a\n", "a\n"), ("", ""), ("\r\n", "\n"), ("x\ry", "x\ny"), ("\n\n", "\n\n")],
    )
    def test_trailing_line_breaks_and_empty_data_survive(
        self, data: str, read: str
    ) -> None:
        assert events_of({"data": data}) == [ServerSentEvent(read)]

    def test_bytes_are_sent_as_utf8_text(self) -> None:
        assert encode({"data": "é\n".encode()}) == "data: é\ndata:\n\n".encode()
        assert encode({"data": bytearray(b"x")}) == b"data: x\n\n"

    def test_text_is_always_utf8_whatever_default_charset_says(self) -> None:
        with override_settings(DEFAULT_CHARSET="latin-1"):
            assert encode({"data": "ü€"}) == "data: ü€\n\n".encode()

    def test_other_data_is_json(self) -> None:
        assert encode({"data": {"a": [1, 2.5, None, True]}}) == (
            b'data: {"a":[1,2.5,null,true]}\n\n'
        )
        assert encode({"data": 0}) == b"data: 0\n\n"
        assert encode({"data": ["line\nbreak"]}) == b'data: ["line\\nbreak"]\n\n'

    def test_json_uses_djangos_encoder_by_default(self) -> None:
        moment = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
        key = uuid.UUID(int=1)
        message = {"data": {"at": moment, "n": decimal.Decimal("1.5"), "key": key}}
        assert json.loads(events_of(message)[0].data) == {
            "at": "2026-11-23T12:00:00Z",
            "n": "1.5",
            "key": str(key),
        }

    def test_a_custom_json_encoder_can_be_given(self) -> None:
        class SetEncoder(json.JSONEncoder):
            def default(self, o: Any) -> Any:
                if isinstance(o, set):
                    return sorted(o)
                return super().default(o)

        message = {"data": {"s": {3, 1}}}
        assert encode(message, json_encoder=SetEncoder) == b'data: {"s":[1,3]}\n\n'

    def test_non_ascii_json_is_sent_as_utf8(self) -> None:
        assert encode({"data": {"w": "ü\u2028"}}) == (
            'data: {"w":"ü\u2028"}\n\n'.encode()
        )


class TestRefusals:
    @pytest.mark.parametrize(
        ("message", "field", "reason"),
        [
            ({"id": "1\ndata: evil"}, "id", "line break"),
            ({"id": "1\rx"}, "id", "line break"),
            ({"id": "a\0b"}, "id", "NUL"),
            ({"event": "a\nb"}, "event", "line break"),
            ({"event": "a\r\nb"}, "event", "line break"),
            ({"event": 5}, "event", "must be a str"),
            ({"id": 1.5}, "id", "must be a str"),
            ({"id": True}, "id", "must be a str"),
            ({"retry_ms": -1}, "retry_ms", "negative"),
            ({"retry_ms": 1.5}, "retry_ms", "int"),
            ({"retry_ms": "100"}, "retry_ms", "int"),
            ({"retry_ms": True}, "retry_ms", "int"),
            ({"data": b"\xff"}, "data", "not valid UTF-8"),
            ({"data": "\ud800"}, "data", "UTF-8"),
            ({"event": "\udfff"}, "event", "UTF-8"),
            ({"data": object()}, "data", "JSON"),
            ({"data": float("nan")}, "data", "JSON"),
            ({"comment": 3}, "comment", "must be a str"),
            ({"data": "x", "name": "y"}, "name", "not a field"),
            ({"retry": 5}, "retry", "not a field"),
        ],
    )
    def test_bad_values_are_refused_with_an_error_naming_the_field(
        self, message: dict[str, Any], field: str, reason: str
    ) -> None:
        with pytest.raises(InvalidMessageError) as caught:
            encode(message)
        assert caught.value.field == field
        assert reason in caught.value.reason
        assert f"'{field}'" in str(caught.value)
        assert isinstance(caught.value, ValueError)

    def test_the_error_shows_the_value(self) -> None:
        with pytest.raises(InvalidMessageError, match=r"got '1\\ndata: evil'"):
            encode({"id": "1\ndata: evil"})

    @pytest.mark.parametrize("message", [["data", "x"], "data: x", 5])
    def test_a_message_that_is_not_a_mapping_is_refused(self, message: Any) -> None:
        with pytest.raises(InvalidMessageError) as caught:
            encode(message)
        assert caught.value.field == "message"


class TestDjbletsBehaviours:
    """The behaviours of djblets' own tests, as bytes where they agree."""

    def test_all_fields(self) -> None:
        message = {"data": "This is message 0.", "event": "update", "id": "id-0"}
        assert encode({**message, "retry_ms": 123}) == (
            b"id: id-0\nevent: update\ndata: This is message 0.\nretry: 123\n\n"
        )

    def test_multi_line_data_keeps_its_trailing_newline(self) -> None:
        # djblets dropped the trailing newline (str.splitlines()); it is data.
        data = "this is line 1\nthis is line 2\n"
        assert encode({"data": data}) == (
            b"data: this is line 1\ndata: this is line 2\ndata:\n\n"
        )
        assert events_of({"data": data}) == [ServerSentEvent(data)]


# Property tests: whatever the message, the client reads back what was meant,
# or the encoder refuses it; never anything else, never two events.

texts = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from("\r\n\0"),
    max_size=40,
)


@given(data=texts, event=st.none() | texts, event_id=st.none() | texts)
def test_any_message_round_trips_or_is_refused(
    data: str, event: str | None, event_id: str | None
) -> None:
    message: dict[str, Any] = {"data": data, "event": event, "id": event_id}
    refused = [
        name
        for name, value in (("id", event_id), ("event", event))
        if value is not None
        and ("\r" in value or "\n" in value or (name == "id" and "\0" in value))
    ]
    if refused:
        with pytest.raises(InvalidMessageError) as caught:
            encode(message)
        assert caught.value.field == refused[0]
        return
    encoded = encode(message)
    parser = EventStreamParser()
    events = parser.feed(encoded)
    expected_data = data.replace("\r\n", "\n").replace("\r", "\n")
    assert events == [
        ServerSentEvent(
            data=expected_data,
            type=event or "message",
            last_event_id=event_id or "",
        )
    ]


@given(
    message=st.fixed_dictionaries(
        {},
        optional={
            "data": texts | st.binary(max_size=20),
            "event": texts,
            "id": texts,
            "retry_ms": st.integers(min_value=-5, max_value=10**6),
            "comment": texts,
        },
    ),
    split=st.integers(min_value=0, max_value=200),
)
def test_no_message_ever_yields_more_than_one_event(
    message: dict[str, Any], split: int
) -> None:
    try:
        encoded = encode(message)
    except InvalidMessageError:
        return
    # However the bytes are cut into chunks, a client reads the same.
    parser = EventStreamParser()
    events = parser.feed(encoded[:split]) + parser.feed(encoded[split:])
    assert len(events) <= 1
    assert events == parse(encoded)
    fires = "data" in message or "event" in message
    assert len(events) == (1 if fires else 0)
