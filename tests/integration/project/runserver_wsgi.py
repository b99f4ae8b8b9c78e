"""
The WSGI application runserver serves with ``SSE_IT_EXPLICIT_SHUTDOWN``: the
explicit recipe that shutdown no longer needs, installed beside the automatic
path to show that the two do no harm together.
"""

import threading

from sse_response.shutdown import end_streams_on_signals
from tests.integration.project.wsgi import application

__all__ = ["application"]

if threading.current_thread() is threading.main_thread():
    end_streams_on_signals()
