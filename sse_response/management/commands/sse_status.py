"""
``manage.py sse_status [CHANNEL ...] [--json]``: the broadcast channels that
have subscribed streams, how many each has, and in which processes (see
docs/broadcast.md, "Presence").
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sse_response.broadcast import BroadcastError, InvalidChannelError, get_backend
from sse_response.broadcast.presence import presence_status


class Command(BaseCommand):
    help = (
        "Show the broadcast channels with subscribed streams (or those given), "
        "the number of streams on each, and the processes that hold them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "channels",
            nargs="*",
            help="The channels to show (default: every channel with streams "
            "that the backend knows of).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print JSON, for scripts."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            status = presence_status(*options["channels"])
        except (BroadcastError, InvalidChannelError) as exc:
            raise CommandError(str(exc)) from exc
        report: dict[str, dict[str, Any]] = {
            channel: {
                "count": sum(len(entries) for entries in processes.values()),
                "processes": {
                    process: len(entries)
                    for process, entries in processes.items()
                    if entries
                },
                "presence": [
                    info
                    for entries in processes.values()
                    for info in entries
                    if info is not None
                ],
            }
            for channel, processes in status.items()
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
            return
        backend = get_backend()
        self.stdout.write(f"Backend: {type(backend).__name__}")
        if not report:
            self.stdout.write("No channel has a subscribed stream.")
        for channel, row in report.items():
            self.stdout.write(
                f"{channel}: {row['count']} stream(s), "
                f"{len(row['presence'])} with presence info"
            )
            for process, count in sorted(row["processes"].items()):
                self.stdout.write(f"  {process}: {count}")
