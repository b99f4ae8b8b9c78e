"""
Server-Sent Events for Django: a streaming response that sends every event as
soon as its source yields it, under ASGI and WSGI, from sync or async code.
"""

from sse_response.encoding import InvalidMessageError, encode
from sse_response.lifetime import end_all_streams
from sse_response.messages import (
    IDLE,
    EventStream,
    EventStreamMessage,
    EventStreamMessages,
)
from sse_response.response import EventStreamHttpResponse, NoRequestWarning

__all__ = [
    "IDLE",
    "EventStream",
    "EventStreamHttpResponse",
    "EventStreamMessage",
    "EventStreamMessages",
    "InvalidMessageError",
    "NoRequestWarning",
    "encode",
    "end_all_streams",
]

__version__ = "0.1.0"
