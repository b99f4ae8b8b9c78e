"""
Fixtures of the broadcast tests: a fresh backend per test, a real
redis-server, a real PostgreSQL, and each backend with what a test of the
contract every backend keeps needs to know of its service.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from sse_response.broadcast import get_backend
from sse_response.broadcast.base import BaseBackend
from tests.broadcast.postgres_server import PostgresServer
from tests.broadcast.redis_server import RedisServer

# The Redis Cluster and Sentinel sets (redis_cluster, redis_sentinel).
from tests.broadcast.redis_topologies import redis_cluster, redis_sentinel  # noqa: F401
from tests.support import PROTOCOLS

UseBackend = Callable[..., BaseBackend]

#: The Django database alias the PostgreSQL tests give the backend.
POSTGRES_ALIAS = "broadcast"


@pytest.fixture
def use_memory_backend() -> Iterator[UseBackend]:
    """Make the process's backend a new MemoryBackend with the OPTIONS given."""
    with ExitStack() as stack:

        def use(**options: Any) -> BaseBackend:
            setting = {
                "BACKEND": "sse_response.broadcast.MemoryBackend",
                "OPTIONS": options,
            }
            stack.enter_context(override_settings(SSE_RESPONSE_BROADCAST=setting))
            return get_backend()

        yield use


@pytest.fixture
def memory_backend(use_memory_backend: UseBackend) -> BaseBackend:
    """A new MemoryBackend with the default options."""
    return use_memory_backend()


@pytest.fixture
def redis_backend(redis_server: RedisServer) -> Iterator[BaseBackend]:
    """The process's backend: a RedisBackend on this test's redis-server."""
    setting = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": redis_server.url,
        "OPTIONS": {"history": 1000},
    }
    with override_settings(SSE_RESPONSE_BROADCAST=setting):
        yield get_backend()


def add_database(alias: str, settings: dict[str, Any]) -> None:
    """Give Django's connections one more alias, after settings were loaded."""
    configured = connections.configure_settings(
        {**connections.settings, alias: settings}
    )
    connections.settings[alias] = configured[alias]


@pytest.fixture(scope="session")
def postgres_server(django_db_blocker: Any) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the run, migrated, as the ``broadcast`` alias."""
    server = PostgresServer()
    try:
        server.start()
        add_database(POSTGRES_ALIAS, server.settings)
        with django_db_blocker.unblock():
            call_command(
                "migrate", "sse_response", database=POSTGRES_ALIAS, verbosity=0
            )
            connections[POSTGRES_ALIAS].close()
        yield server
    finally:
        server.remove()


@pytest.fixture
def use_postgres_backend(
    postgres_server: PostgresServer, django_db_blocker: Any
) -> Iterator[UseBackend]:
    """Make the process's backend a new PostgresBackend with the OPTIONS given."""
    with postgres_server.connect() as connection:
        connection.execute(
            "TRUNCATE sse_response_event, sse_response_channel, sse_response_epoch,"
            " sse_response_presence"
        )
    with ExitStack() as stack:
        # Publishing uses Django's connection of the alias.
        stack.enter_context(django_db_blocker.unblock())

        def use(**options: Any) -> BaseBackend:
            setting = {
                "BACKEND": "sse_response.broadcast.PostgresBackend",
                "LOCATION": POSTGRES_ALIAS,
                "OPTIONS": options,
            }
            stack.enter_context(override_settings(SSE_RESPONSE_BROADCAST=setting))
            return get_backend()

        yield use


@pytest.fixture
def postgres_backend(use_postgres_backend: UseBackend) -> BaseBackend:
    """A new PostgresBackend with the default options."""
    return use_postgres_backend()


@dataclass
class Service:
    """A backend with an outside service, as the contract tests see it."""

    backend: BaseBackend
    #: The roles of this process's connections to the service.
    connections: Callable[[], list[str]]
    #: Cut every connection of this process to the service.
    cut_connections: Callable[[], None]


def _redis_service(request: pytest.FixtureRequest) -> Service:
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"sse_response-{os.getpid()}-"

    def cut() -> None:
        with server.client() as admin:
            admin.client_kill_filter(skipme=True, _type="normal")

    return Service(
        request.getfixturevalue("redis_backend"),
        lambda: sorted(
            client["name"].removeprefix(prefix)
            for client in server.clients_named(prefix)
        ),
        cut,
    )


def _postgres_service(request: pytest.FixtureRequest) -> Service:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    prefix = f"sse_response-{os.getpid()}-"

    def cut() -> None:
        with server.connect() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE %s",
                [prefix + "%"],
            )

    return Service(
        request.getfixturevalue("postgres_backend"),
        lambda: [name.removeprefix(prefix) for name in server.connections(prefix)],
        cut,
    )


@pytest.fixture(params=["redis", "postgres"])
def service(request: pytest.FixtureRequest) -> Service:
    """Each backend that has an outside service, in turn."""
    make = _redis_service if request.param == "redis" else _postgres_service
    return make(request)


@pytest.fixture(params=["memory", "redis", "postgres"])
def any_backend(request: pytest.FixtureRequest) -> BaseBackend:
    """Each backend in turn."""
    backend: BaseBackend = request.getfixturevalue(f"{request.param}_backend")
    return backend


@pytest.fixture(params=sorted(PROTOCOLS))
def start(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Start a request under ASGI, then under WSGI (Django's real handlers)."""
    return PROTOCOLS[request.param]
