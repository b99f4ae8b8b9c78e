"""
A real PostgreSQL server (Debian's) for the tests: a cluster made with
``initdb`` in a temporary directory, served on a free port of 127.0.0.1,
and stopped (or killed, and started again) by the test.

PostgreSQL refuses to run as root, so where the tests run as root (CI), the
cluster belongs to Debian's ``postgres`` user and the server runs as it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.integration.servers import free_port

#: Debian's PostgreSQL programs, the newest version installed.
BIN = Path(
    max(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name),
        default="/usr/lib/postgresql/15/bin",
    )
)

#: How long the server may take to accept connections, or to stop.
START_TIMEOUT = 30.0

USER = "sse"
DATABASE = "sse"


def _run_as() -> str | None:
    """The user to run the server as: ``postgres`` when the tests run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise AssertionError(
            "PostgreSQL cannot run as root and there is no 'postgres' user: "
            "install Debian's postgresql (.ci/install-system-deps does)."
        ) from None
    return "postgres"


class PostgresServer:
    """One PostgreSQL cluster and its server; stop, kill and start it at will."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise AssertionError(
                f"{BIN}/initdb is missing: install Debian's postgresql "
                "(.ci/install-system-deps does)."
            )
        self.user = _run_as()
        # Not under pytest's tmp_path, which only root may enter.
        self.directory = Path(tempfile.mkdtemp(prefix="sse-response-pg-"))
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self.data = self.directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._run(
            [
                str(BIN / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ]
        )

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(
            argv,
            user=self.user,
            capture_output=True,
            timeout=START_TIMEOUT,
            check=False,
            cwd=self.directory,
        )
        if result.returncode:
            raise AssertionError(
                f"{argv[0]} failed:\n{result.stdout.decode()}{result.stderr.decode()}"
            )

    @property
    def settings(self) -> dict[str, Any]:
        """A Django ``DATABASES`` entry for the test database."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DATABASE,
            "USER": USER,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def connect(self, dbname: str = DATABASE) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=2,
        )

    def start(self) -> None:
        log = (self.directory / "postgres.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                user=self.user,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"postgres exited at start:\n{self.log()}")
            with contextlib.suppress(psycopg.OperationalError):
                with self.connect("postgres") as connection:
                    exists = connection.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
                    ).fetchone()
                    if not exists:
                        connection.execute(f"CREATE DATABASE {DATABASE}")
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"postgres did not answer in {START_TIMEOUT} s:\n{self.log()}"
                )
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return (self.directory / "postgres.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server at once (a fast shutdown: sessions are cut)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(START_TIMEOUT)

    def connections(self, application_name_prefix: str) -> list[str]:
        """The application names of the server's connections with this prefix."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT application_name FROM pg_stat_activity "
                "WHERE application_name LIKE %s",
                [application_name_prefix + "%"],
            ).fetchall()
        return sorted(str(row[0]) for row in rows)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
