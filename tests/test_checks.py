"""``manage.py check`` names every bad ``SSE_RESPONSE_*`` setting and its value."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings


def errors(**settings: Any) -> list[tuple[str, str]]:
    with override_settings(**settings):
        return [(message.id or "", message.msg) for message in run_checks()]


def test_good_settings_pass() -> None:
    assert errors() == []
    assert (
        errors(
            SSE_RESPONSE_MAX_SYNC_STREAMS=0,
            SSE_RESPONSE_END_STREAMS_ON_SIGNALS=False,
            SSE_RESPONSE_METRICS=False,
        )
        == []
    )


@pytest.mark.parametrize("value", [-1, 1.5, "100", True, None])
def test_max_sync_streams_must_be_a_non_negative_int(value: object) -> None:
    assert errors(SSE_RESPONSE_MAX_SYNC_STREAMS=value) == [
        (
            "sse_response.E001",
            f"SSE_RESPONSE_MAX_SYNC_STREAMS must be a non-negative int, not {value!r}.",
        )
    ]


@pytest.mark.parametrize("value", [0, "no", None])
def test_end_streams_on_signals_must_be_a_bool(value: object) -> None:
    assert errors(SSE_RESPONSE_END_STREAMS_ON_SIGNALS=value) == [
        (
            "sse_response.E002",
            "SSE_RESPONSE_END_STREAMS_ON_SIGNALS must be True or False, "
            f"not {value!r}.",
        )
    ]


@pytest.mark.parametrize("value", [0, "yes", None])
def test_metrics_must_be_a_bool(value: object) -> None:
    assert errors(SSE_RESPONSE_METRICS=value) == [
        (
            "sse_response.E003",
            f"SSE_RESPONSE_METRICS must be True or False, not {value!r}.",
        )
    ]


def test_manage_py_check_fails_with_the_setting_and_its_value() -> None:
    with (
        override_settings(SSE_RESPONSE_MAX_SYNC_STREAMS="lots"),
        pytest.raises(SystemCheckError, match=r"E001.*MAX_SYNC_STREAMS.*'lots'"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set ATOMIC_REQUESTS on databases (overriding DATABASES itself warns)."""
    from django.conf import settings

    def set_atomic(alias: str, value: bool) -> None:
        if alias not in settings.DATABASES:
            # A real engine: Django 6.1 may make a connection of every alias.
            monkeypatch.setitem(
                settings.DATABASES,
                alias,
                {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            )
        monkeypatch.setitem(settings.DATABASES[alias], "ATOMIC_REQUESTS", value)

    return set_atomic


def test_atomic_requests_with_a_backend_outside_the_transaction_warns(
    atomic_requests: Any,
) -> None:
    atomic_requests("default", True)
    atomic_requests("other", False)
    found = errors()
    assert [message_id for message_id, _ in found] == ["sse_response.W001"]
    assert "DATABASES['default'] has ATOMIC_REQUESTS" in found[0][1]
    assert "MemoryBackend" in found[0][1]


def test_atomic_requests_with_the_postgres_backend_on_that_database(
    atomic_requests: Any,
) -> None:
    from sse_response.checks import _check_atomic_requests

    postgres = {
        "BACKEND": "sse_response.broadcast.PostgresBackend",
        "LOCATION": "default",
    }
    atomic_requests("default", True)
    with override_settings(SSE_RESPONSE_BROADCAST=postgres):
        assert _check_atomic_requests() == []
        atomic_requests("default", False)
        atomic_requests("other", True)
        assert [m.id for m in _check_atomic_requests()] == ["sse_response.W001"]
