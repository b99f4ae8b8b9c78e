"""
The WSGI application runserver serves, with a SIGTERM handler.

runserver gives the application no signal before it exits: on SIGTERM the
process just dies, and its request threads (daemon threads) with it, so no
stream's ``finally`` runs. This handler, the recipe docs/deployment.md gives,
ends the open streams, gives their threads a moment to finish, and exits.
"""

import signal
import sys
import threading
import time
from types import FrameType

from tests.integration.project.wsgi import application

__all__ = ["application"]

GRACE = 3.0


def end_streams_and_exit(signum: int, frame: FrameType | None) -> None:
    import sse_response

    sse_response.end_all_streams()  # type: ignore[attr-defined,unused-ignore]
    deadline = time.monotonic() + GRACE
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    sys.exit(0)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, end_streams_and_exit)
