"""
The WSGI application runserver serves, with SIGTERM ending open streams.

runserver gives the application no signal before it exits: on SIGTERM the
process dies at once, and its request threads with it. With the handler
(the recipe of docs/deployment.md), SIGTERM ends the open streams and exits
through the interpreter, which gives their sources time to run ``finally``.
"""

import threading

from sse_response.shutdown import end_streams_on_signals
from tests.integration.project.wsgi import application

__all__ = ["application"]

if threading.current_thread() is threading.main_thread():
    end_streams_on_signals()
