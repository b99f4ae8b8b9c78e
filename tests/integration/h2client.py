"""
A small HTTP/2 client on the h2 library (the one httpx uses), for what httpx
cannot do: reset one stream (RST_STREAM) of a connection and keep the others.
httpx only forgets a stream it stops reading.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from sse_response.testing import EventStreamParser, ServerSentEvent
from tests.integration.tls import Certificates

#: How long any wait may last before the test fails.
READ_TIMEOUT = 10.0


@dataclass
class H2Stream:
    """What arrived on one stream."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    parser: EventStreamParser = field(default_factory=EventStreamParser)
    events: list[ServerSentEvent] = field(default_factory=list)
    ended: bool = False
    reset: bool = False


class H2Client:
    """One HTTP/2 connection over TLS to 127.0.0.1, carrying many streams."""

    def __init__(
        self, port: int, certificates: Certificates, stream_window: int | None = None
    ) -> None:
        self.authority = f"127.0.0.1:{port}"
        raw = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        context = certificates.client_context(alpn=["h2"])
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.connection = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True)
        )
        self.connection.initiate_connection()
        if stream_window is not None:
            # How much a stream may send before the client takes it.
            self.connection.update_settings(
                {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window}
            )
        self._flush()
        self.streams: dict[int, H2Stream] = {}
        self.closed_by_server = False
        #: The streams the client has stopped taking data from.
        self.stalled: set[int] = set()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.closed_by_server:
            self.sock.close()
            return
        try:
            self.connection.close_connection()
            self._flush()
        except OSError:
            pass
        self.sock.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        """Open a GET stream; return its id."""
        stream_id = self.connection.get_next_available_stream_id()
        request = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", self.authority),
            (":path", path),
            ("accept", "text/event-stream"),
            *((name.lower(), value) for name, value in (headers or {}).items()),
        ]
        self.connection.send_headers(stream_id, request, end_stream=True)
        self._flush()
        self.streams[stream_id] = H2Stream()
        return stream_id

    def reset(self, stream_id: int) -> None:
        """End one stream as a browser does when a page closes its EventSource."""
        self.connection.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self._flush()
        self.streams[stream_id].reset = True

    def stall(self, stream_id: int) -> None:
        """
        Stop taking data from one stream, as a client that stops reading it:
        its flow-control window is never given back.
        """
        self.stalled.add(stream_id)

    def wait(self, done: Callable[[], bool], what: str) -> None:
        """Read frames until ``done()``, for at most READ_TIMEOUT seconds."""
        deadline = time.monotonic() + READ_TIMEOUT
        while not done():
            if self.closed_by_server:
                raise AssertionError(f"the server closed the connection: {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {READ_TIMEOUT} s: {what}")
            self._receive()

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.closed_by_server = True
            return
        for event in self.connection.receive_data(data):
            self._handle(event)
        self._flush()

    def _handle(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        stream = self.streams.get(stream_id) if stream_id is not None else None
        if isinstance(event, h2.events.DataReceived):
            if event.stream_id in self.stalled:
                return
            # Give the window back, for the stream and for the connection.
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            if stream is not None and not stream.reset:
                stream.events.extend(stream.parser.feed(event.data or b""))
        elif stream is None:
            return
        elif isinstance(event, h2.events.ResponseReceived):
            for name, value in event.headers or []:
                text = name.decode() if isinstance(name, bytes) else name
                value_text = value.decode() if isinstance(value, bytes) else value
                stream.headers[text] = value_text
            stream.status = int(stream.headers[":status"])
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            stream.reset = True

    def _flush(self) -> None:
        outgoing = self.connection.data_to_send()
        if outgoing:
            self.sock.sendall(outgoing)
