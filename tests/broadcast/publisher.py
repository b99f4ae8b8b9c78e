"""
A publisher in a process of its own, for the multi-process tests:

    python -m tests.broadcast.publisher CHANNEL FIRST LAST INTERVAL [SIZE]

publishes ``{"n": n, "at": <time.time()>}`` for n from FIRST to LAST to
CHANNEL, sleeping INTERVAL seconds after each, with SIZE characters of
padding, with the integration project's settings (the
broadcast backend comes from ``SSE_IT_REDIS_URL`` or ``SSE_IT_POSTGRES``).
"""

from __future__ import annotations

import os
import sys
import time

import django


def main(argv: list[str]) -> None:
    channel, first, last, interval = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    padding = "x" * int(argv[4]) if len(argv) > 4 else ""
    os.environ.setdefault(
        "DJANGO_SETTINGS_MODULE", "tests.integration.project.settings"
    )
    django.setup()
    from sse_response.broadcast import publish

    for n in range(first, last + 1):
        data: dict[str, object] = {"n": n, "at": time.time()}
        if padding:
            data["padding"] = padding
        publish(channel, {"event": "n", "data": data})
        if interval:
            time.sleep(interval)


if __name__ == "__main__":
    main(sys.argv[1:])
