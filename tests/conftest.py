from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import django
import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import TransactionTestCase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from tests import views  # noqa: E402
from tests.broadcast.redis_server import RedisServer  # noqa: E402
from tests.support import Probe  # noqa: E402

_keys = itertools.count()


@pytest.fixture(autouse=True)
def _no_database_behind_closing(request: pytest.FixtureRequest) -> Iterator[None]:
    """
    Outside the database tests, closing a response (as servers do, which
    sends ``request_finished``) must not reach the database: pytest-django
    runs those tests first, their in-memory sqlite connection stays open, and
    Django's ``close_old_connections`` would touch it where pytest-django
    forbids database access. Django's test clients do the same.
    """
    uses_database = request.node.get_closest_marker("django_db") is not None or (
        isinstance(request.instance, TransactionTestCase)
    )
    if uses_database:
        yield
        return
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_finished.connect(close_old_connections)


@pytest.fixture
def probe() -> Iterator[Probe]:
    probe = Probe()
    yield probe
    # Never leave a source blocked behind its gate.
    probe.release()


@pytest.fixture
def serve() -> Iterator[Callable[[views.ResponseFactory], str]]:
    """Register a response factory; return the path of an async view serving it."""
    keys: list[str] = []

    def register(factory: views.ResponseFactory, *, async_view: bool = True) -> str:
        key = f"k{next(_keys)}"
        keys.append(key)
        views.FACTORIES[key] = factory
        return f"/{'astream' if async_view else 'stream'}/{key}/"

    yield register
    for key in keys:
        views.FACTORIES.pop(key, None)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own (see broadcast/redis_server.py)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
