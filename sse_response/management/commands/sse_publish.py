"""
``manage.py sse_publish CHANNEL --event E --data JSON``: publish one event
to a broadcast channel, from a script or cron (see docs/broadcast.md).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sse_response.broadcast import (
    BroadcastError,
    InvalidChannelError,
    end_streams,
    publish,
)
from sse_response.encoding import InvalidMessageError


class Command(BaseCommand):
    help = (
        "Publish an event to a broadcast channel: every open stream subscribed "
        "to it sends it. Prints the event's id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channel", help="The channel to publish to.")
        parser.add_argument("--event", help="The event type (default: message).")
        parser.add_argument(
            "--data",
            help="The data, as JSON (a JSON string is sent as its text).",
        )
        parser.add_argument(
            "--end-streams",
            action="store_true",
            help="Instead of publishing, end every open stream of the channel "
            "(its clients reconnect, and the view checks their access again).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        channel = options["channel"]
        try:
            if options["end_streams"]:
                end_streams(channel)
                return
            message: dict[str, Any] = {}
            if options["event"] is not None:
                message["event"] = options["event"]
            if options["data"] is not None:
                try:
                    message["data"] = json.loads(options["data"])
                except json.JSONDecodeError as exc:
                    raise CommandError(f"--data is not valid JSON: {exc}") from None
            self.stdout.write(publish(channel, message))
        except (BroadcastError, InvalidChannelError, InvalidMessageError) as exc:
            raise CommandError(str(exc)) from exc
