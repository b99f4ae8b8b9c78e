"""
The fan-out peer: Django Channels' ``AsyncHttpConsumer`` with channels_redis
(bench/fanout.py, ``--backends channels channels-pubsub``).

``BENCH_CHANNELS_LAYER`` is ``core`` (``RedisChannelLayer``) or ``pubsub``
(``RedisPubSubChannelLayer``) and ``BENCH_REDIS_URL`` the Redis. ``/fanout/``
streams the group ``bench``, ``/channels/<i>/`` the group ``u<i>``
(bench/channels.py): each message's ``text`` is sent as it is (an SSE event
the publisher wrote). ``/fanout/count/`` says how many streams joined their
group.
"""

from __future__ import annotations

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")
django.setup()

from channels.generic.http import AsyncHttpConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

subscribed = 0


class Fanout(AsyncHttpConsumer):  # type: ignore[misc]
    @property
    def group(self) -> str:
        number = self.scope.get("url_route", {}).get("kwargs", {}).get("i")
        return "bench" if number is None else f"u{number}"

    async def http_request(self, message: dict[str, Any]) -> None:
        # AsyncHttpConsumer ends the consumer once handle() returns; an event
        # stream must stay, so that group messages reach bench_event().
        await self.handle(b"")

    async def handle(self, body: bytes) -> None:
        global subscribed
        await self.send_headers(
            headers=[
                (b"Content-Type", b"text/event-stream"),
                (b"Cache-Control", b"no-cache"),
            ]
        )
        await self.send_body(b"", more_body=True)
        await self.channel_layer.group_add(self.group, self.channel_name)
        subscribed += 1

    async def bench_event(self, event: dict[str, Any]) -> None:
        await self.send_body(event["text"].encode(), more_body=True)

    async def disconnect(self) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)


class Count(AsyncHttpConsumer):  # type: ignore[misc]
    async def handle(self, body: bytes) -> None:
        await self.send_response(200, str(subscribed).encode())


application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("fanout/", Fanout.as_asgi()),
                path("channels/<int:i>/", Fanout.as_asgi()),
                path("fanout/count/", Count.as_asgi()),
            ]
        )
    }
)
