"""
Bounded waits for what the tests cannot be told about directly: a condition
in another process, or a server process that has started.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def wait_until_answers(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float,
    log: Callable[[], str],
) -> None:
    """
    Wait until ``url`` answers 200; fail at once, with ``log()``, if the
    server ``process`` exits first, and after ``timeout`` seconds otherwise.
    """

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited at start:\n{log()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer in {timeout} s:\n{log()}")
        time.sleep(0.05)
