"""The local hub's record of the channels a backend follows on its service."""

from __future__ import annotations

import pytest

from sse_response.broadcast.hub import LocalHub, Subscriber

pytestmark = pytest.mark.timeout(10)


def subscriber(*channels: str) -> Subscriber:
    return Subscriber(channels, 1 << 20)


async def test_a_channel_gained_and_lost_between_two_looks_is_dropped() -> None:
    hub = LocalHub()
    first = subscriber("u7")
    hub.add(first)
    assert hub.take_changes() == (["u7"], [])  # the backend subscribes
    # A page reloaded, then left before the backend looked again: whatever
    # happened in between, nobody listens now, so the backend unsubscribes.
    hub.remove(first)
    second = subscriber("u7")
    hub.add(second)
    hub.remove(second)
    assert hub.take_changes() == ([], ["u7"])
    assert hub.take_changes() == ([], [])


async def test_a_channel_lost_and_gained_between_two_looks_is_added() -> None:
    hub = LocalHub()
    first = subscriber("u7", "u8")
    hub.add(first)
    hub.take_changes()
    hub.remove(first)
    hub.add(subscriber("u7"))
    # u7 has a new stream whose start is unknown: looked up again.
    assert hub.take_changes() == (["u7"], ["u8"])


async def test_a_channel_gained_and_lost_unseen_is_given_as_dropped() -> None:
    hub = LocalHub()
    fleeting = subscriber("u9")
    hub.add(fleeting)
    hub.remove(fleeting)
    # The backend may never have subscribed to it: dropping it is harmless.
    assert hub.take_changes() == ([], ["u9"])
