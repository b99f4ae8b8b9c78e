"""
Gunicorn settings for event streams: the server hook that ends open streams
when a worker is told to stop (the recipe of docs/deployment.md).

Gunicorn's sync and gthread workers give the application no signal when
they stop: they wait for the requests in flight, which an endless stream
never ends, until ``graceful_timeout`` runs out and the master kills them.
Chaining the worker's SIGTERM handler ends every stream at once, with a
``retry:`` hint, so the worker exits at once and every source's ``finally``
runs.
"""

import signal
from types import FrameType
from typing import Any


def post_worker_init(worker: Any) -> None:
    previous = signal.getsignal(signal.SIGTERM)

    def end_streams(signum: int, frame: FrameType | None) -> None:
        import sse_response

        sse_response.end_all_streams()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, end_streams)
    signal.siginterrupt(signal.SIGTERM, False)
