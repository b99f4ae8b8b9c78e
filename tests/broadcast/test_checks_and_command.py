"""``manage.py check`` of SSE_RESPONSE_BROADCAST, and ``manage.py sse_publish``."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from sse_response.broadcast.base import BaseBackend
from sse_response.broadcast.positions import channel_tag
from sse_response.broadcast.stream import Subscription
from sse_response.checks import check_settings
from tests.broadcast.helpers import attached


def error_ids(setting: Any) -> list[str]:
    with override_settings(SSE_RESPONSE_BROADCAST=setting):
        return [error.id or "" for error in check_settings()]


def redis(location: Any, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": location,
        "OPTIONS": options,
    }


@pytest.mark.parametrize(
    ("setting", "ids"),
    [
        ({"BACKEND": "sse_response.broadcast.MemoryBackend"}, []),
        (
            {
                "BACKEND": "sse_response.broadcast.RedisBackend",
                "LOCATION": "redis://127.0.0.1:6379/0",
                "OPTIONS": {"history": 10, "buffer": 4096},
            },
            [],
        ),
        ("redis://", ["sse_response.E010"]),
        (
            {"BACKEND": "sse_response.broadcast.MemoryBackend", "HISTORY": 5},
            ["sse_response.E011"],
        ),
        ({}, ["sse_response.E012"]),
        ({"BACKEND": "sse_response.broadcast.Nope"}, ["sse_response.E013"]),
        ({"BACKEND": "sse_response.encoding.encode"}, ["sse_response.E014"]),
        (
            {"BACKEND": "sse_response.broadcast.MemoryBackend", "OPTIONS": []},
            ["sse_response.E015"],
        ),
        (
            {
                "BACKEND": "sse_response.broadcast.MemoryBackend",
                "OPTIONS": {"history": 0},
            },
            ["sse_response.E016"],
        ),
        (
            {
                "BACKEND": "sse_response.broadcast.MemoryBackend",
                "OPTIONS": {"buffer": "1M"},
            },
            ["sse_response.E017"],
        ),
        ({"BACKEND": "sse_response.broadcast.RedisBackend"}, ["sse_response.E018"]),
        (redis(["redis://a:7000", "redis://b:7000"], cluster=True), []),
        (redis(["redis://a:26379"], sentinel="mymaster"), []),
        (redis(["unix:///tmp/redis.sock"], cluster=True), ["sse_response.E018"]),
        (redis(["redis://a:7000", "redis://b:7000"]), ["sse_response.E021"]),
        (redis("redis://a:7000", cluster="yes"), ["sse_response.E022"]),
        (redis(["redis://a:26379"], sentinel=""), ["sse_response.E023"]),
        (
            redis("redis://a:7000", cluster=True, sentinel="m"),
            ["sse_response.E024"],
        ),
        (redis("redis://a:7000", prefix="app{1}"), ["sse_response.E025"]),
        (redis("redis://a:7000", socket_timeout=0), ["sse_response.E026"]),
        (
            redis(["redis://a:26379"], sentinel="m", sentinel_kwargs="secret"),
            ["sse_response.E027"],
        ),
    ],
)
def test_check_names_the_bad_value(setting: Any, ids: list[str]) -> None:
    assert error_ids(setting) == ids


def test_the_error_names_the_setting_and_the_value() -> None:
    with override_settings(
        SSE_RESPONSE_BROADCAST={"BACKEND": "x.Y", "OPTIONS": {"history": -3}}
    ):
        messages = [error.msg for error in check_settings()]
    assert any("SSE_RESPONSE_BROADCAST" in m and "'x.Y'" in m for m in messages)
    assert any('["history"]' in m and "-3" in m for m in messages)


def test_sse_publish_reaches_a_subscriber(memory_backend: BaseBackend) -> None:
    async def run() -> list[Any]:
        events = Subscription(("orders",), None).events(None)
        first = asyncio.ensure_future(events.__anext__())
        await attached(memory_backend, 1)
        out = io.StringIO()
        await asyncio.to_thread(
            call_command,
            "sse_publish",
            "orders",
            "--event",
            "made",
            "--data",
            '{"n": 1}',
            stdout=out,
        )
        assert out.getvalue().strip().startswith(f"{channel_tag('orders')}1:")
        got = [await asyncio.wait_for(first, 5)]
        await asyncio.to_thread(call_command, "sse_publish", "orders", "--end-streams")
        got.append(await asyncio.wait_for(events.__anext__(), 5))
        await events.aclose()
        return got

    published, ended = asyncio.run(run())
    assert published.endswith(b'event: made\ndata: {"n":1}\n\n')
    assert ended == {"retry_ms": 1000}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["orders", "--data", "{nope"], "not valid JSON"),
        (["bad channel", "--data", "1"], "Invalid channel name"),
        (["orders"], "needs data or an event"),
    ],
)
def test_sse_publish_errors(
    memory_backend: BaseBackend, arguments: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("sse_publish", *arguments)
