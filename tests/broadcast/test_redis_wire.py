"""The RedisBackend's published messages, parsed (sse_response.broadcast.redis.wire)."""

from __future__ import annotations

from sse_response.broadcast.positions import Lineage
from sse_response.broadcast.redis.wire import parse_message


def test_a_message_carries_its_time_of_publishing() -> None:
    seq, lineage, payload, published = parse_message(
        b"7 e2 3 e1 p 1796660000.250000\ndata: x\n\n"
    )
    assert (seq, lineage, payload) == (7, Lineage("e2", 3, "e1"), b"data: x\n\n")
    assert published == 1796660000.25


def test_an_order_to_end_and_a_message_without_a_time() -> None:
    assert parse_message(b"8 e2 3 e1 e\n") == (8, Lineage("e2", 3, "e1"), None, 0.0)
