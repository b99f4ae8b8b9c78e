from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from tests import views  # noqa: E402
from tests.support import Probe  # noqa: E402

_keys = itertools.count()


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
