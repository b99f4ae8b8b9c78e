"""
A real redis-server (Debian's) for the tests: started on a free port of
127.0.0.1 in a temporary directory, with no persistence, so that a restart
brings it back empty, as a Redis that lost its data.

The nodes of a Redis Cluster and the processes of a Sentinel set
(redis_topologies.py) are the same class, given more options.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from tests.integration.servers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

#: How long redis-server may take to answer its first PING.
START_TIMEOUT = 10.0


class RedisServer:
    """
    One redis-server process; :meth:`kill` and :meth:`start` again at will
    (on the same port, in the same directory).

    ``args`` are more command-line options, after (so over) the defaults;
    ``config``, the text of a configuration file written in the directory
    before the first start and given first on the command line (a Sentinel
    needs one it can rewrite; it keeps its rewrites across restarts).
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        config: str | None = None,
    ) -> None:
        self.directory = directory
        self.port = free_port() if port is None else port
        self.args = list(args)
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file: list[str] = []
        if self.config is not None:
            path = self.directory / "redis.conf"
            if not path.exists():
                path.write_text(self.config)
            config_file = [str(path)]
        log = (self.directory / "redis.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    REDIS_SERVER,
                    *config_file,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    "redis-server exited at start:\n"
                    + (self.directory / "redis.log").read_text(errors="replace")
                )
            with contextlib.suppress(redis.ConnectionError), self.client() as client:
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"redis-server did not answer in {START_TIMEOUT} s"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """Stop it at once (SIGKILL): its data is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client_count(self) -> int:
        """How many clients are connected, this query's own excluded."""
        with self.client() as client:
            return len(client.client_list()) - 1

    def clients_named(self, prefix: str) -> list[dict[str, Any]]:
        """The connected clients whose name starts with ``prefix``."""
        with self.client() as client:
            return [
                entry
                for entry in client.client_list()
                if str(entry.get("name", "")).startswith(prefix)
            ]
