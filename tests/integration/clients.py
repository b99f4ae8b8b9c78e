"""
The clients the integration tests read streams with, and the tests' view of
what the test sources reported (see project/views.py).
"""

from __future__ import annotations

import socket
import struct
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from sse_response.testing import EventStreamParser, ServerSentEvent
from tests.polling import wait_for

__all__ = ["RawStream", "Reports", "Stream", "token", "wait_for"]


#: How long a read may wait for the server before the test fails.
READ_TIMEOUT = 10.0


def token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Finally:
    """What a source reported when its ``finally`` ran."""

    at: float
    sent: int


class Reports:
    """What the sources of one server reported, in its state directory."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def started(self, token: str) -> bool:
        return (self.state / f"{token}.started").exists()

    def finally_(self, token: str) -> Finally | None:
        try:
            at, sent = (self.state / f"{token}.finally").read_text().split()
        except FileNotFoundError:
            return None
        return Finally(float(at), int(sent))

    def wait_finally(self, token: str, timeout: float) -> Finally:
        return wait_for(lambda: self.finally_(token), timeout, f"finally of {token}")

    def release(self, token: str, n: int | None = None) -> None:
        """Let a source that holds go on (after event ``n``, or for good)."""
        (self.state / f"{token}.go{'' if n is None else n}").touch()


class _EventReader:
    """Events parsed from a stream, read on demand by ``_read()``."""

    pending: deque[ServerSentEvent]

    def _read(self) -> None:
        raise NotImplementedError

    def next_event(self) -> ServerSentEvent:
        while not self.pending:
            self._read()
        return self.pending.popleft()

    def events(self, n: int) -> list[ServerSentEvent]:
        return [self.next_event() for _ in range(n)]


class Stream(_EventReader):
    """An event stream read with httpx, event by event."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        headers: dict[str, str] | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._context = client.stream(
            "GET",
            url,
            headers={"Accept": "text/event-stream", **(headers or {})},
            timeout=httpx.Timeout(READ_TIMEOUT, read=read_timeout),
        )
        self.response = self._context.__enter__()
        self._chunks = self.response.iter_raw()
        self.parser = EventStreamParser()
        self.pending: deque[ServerSentEvent] = deque()
        self.ended = False

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def _read(self) -> None:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.ended = True
            raise AssertionError("the stream ended") from None
        self.pending.extend(self.parser.feed(chunk))

    def wait_comments(self, n: int) -> list[str]:
        while len(self.parser.comments) < n:
            self._read()
        return self.parser.comments

    def rest(self) -> list[ServerSentEvent]:
        """Every event up to the end of the stream."""
        try:
            while True:
                self._read()
        except AssertionError:
            if not self.ended:
                raise
        self.parser.close()
        events = list(self.pending)
        self.pending.clear()
        return events


class RawStream(_EventReader):
    """
    An event stream read from a plain socket (HTTP/1.0, so the body is the
    bytes as they come), which can end the connection with a reset.
    """

    def __init__(
        self,
        port: int,
        path: str,
        headers: dict[str, str] | None = None,
        receive_buffer: int | None = None,
        timeout: float = READ_TIMEOUT,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if receive_buffer is not None:
                self.sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer
                )
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
            lines = [f"GET {path} HTTP/1.0", f"Host: 127.0.0.1:{port}"]
            lines += [
                f"{k}: {v}"
                for k, v in {"Accept": "text/event-stream", **(headers or {})}.items()
            ]
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        except BaseException:
            self.sock.close()
            raise
        self.parser = EventStreamParser()
        self.pending: deque[ServerSentEvent] = deque()
        self.head = b""
        self._body_started = False

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(reset=True)

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError("the stream ended")
        if not self._body_started:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head, data = self.head.split(b"\r\n\r\n", 1)
            self._body_started = True
            status = self.head.split(b"\r\n", 1)[0]
            assert b" 200 " in status + b" ", status
        self.pending.extend(self.parser.feed(data))

    def read_to_end(self) -> int | None:
        """
        Read until the server closes the connection (each read bounded by
        the socket's timeout); return the reconnection time it set, if any.
        """
        try:
            while True:
                self._read()
        except AssertionError as end:
            if str(end) != "the stream ended":
                raise
        return self.parser.retry

    def close(self, reset: bool) -> None:
        """Close the connection, with a reset (RST) rather than a FIN if asked."""
        if self.sock.fileno() == -1:
            return
        if reset:
            self.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.sock.close()


def ids(events: list[ServerSentEvent]) -> list[str]:
    return [event.last_event_id for event in events]
