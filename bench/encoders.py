"""
The pure encoding cost per event of each library's encoder, with no I/O.

Run by the orchestrator in each bench venv (djblets needs its own Django);
prints a JSON object ``{encoder: {shape: ns_per_event}}`` for the encoders
importable here. Each figure is the median of 7 repeats of 20,000 events.

* sse_response: ``sse_response.encode(message)``, what the response calls;
* sse-starlette: ``ensure_bytes(message, sep)``, what EventSourceResponse
  calls for a dict (it builds a ``ServerSentEvent`` and encodes it);
* djblets: the response's own message loop (``_process_events``), over a
  list of messages, divided by their number.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))

from workload import DATA, message

EVENTS = 20_000
REPEATS = 7

SHAPES: dict[str, list[dict[str, Any]]] = {
    "one-line data": [message(i) for i in range(EVENTS)],
    "three-line data": [
        {"id": str(i), "event": "tick", "data": f"{DATA}\n{DATA}\n{DATA}"}
        for i in range(EVENTS)
    ],
}


def _time_per_event(run: Callable[[list[dict[str, Any]]], None], messages) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(messages)
        samples.append((time.perf_counter() - start) / len(messages) * 1e9)
    return statistics.median(samples)


def _encoders() -> dict[str, Callable[[list[dict[str, Any]]], None]]:
    found: dict[str, Callable[[list[dict[str, Any]]], None]] = {}
    try:
        from sse_response import encode

        def run_sse_response(messages: list[dict[str, Any]]) -> None:
            for m in messages:
                encode(m)

        found["sse_response"] = run_sse_response
    except ImportError:
        pass
    try:
        from sse_starlette.event import ensure_bytes

        def run_sse_starlette(messages: list[dict[str, Any]]) -> None:
            for m in messages:
                ensure_bytes(m, "\n")

        found["sse-starlette"] = run_sse_starlette
    except ImportError:
        pass
    try:
        from djblets.http.responses import EventStreamHttpResponse

        def run_djblets(messages: list[dict[str, Any]]) -> None:
            for _chunk in EventStreamHttpResponse(iter(messages))._process_events():
                pass

        found["djblets"] = run_djblets
    except ImportError:
        pass
    return found


def main() -> None:
    """Print the cost per event of every encoder importable here."""
    import django
    from django.conf import settings

    settings.configure()  # djblets' make_bytes reads DEFAULT_CHARSET.
    django.setup()
    results = {
        name: {shape: _time_per_event(run, msgs) for shape, msgs in SHAPES.items()}
        for name, run in _encoders().items()
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
