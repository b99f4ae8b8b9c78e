"""
System checks (``manage.py check``) of the settings the library reads.

Each check names the setting and the bad value. Ids: ``sse_response.E001``
to ``E009`` for the response's settings, ``E010`` to ``E029`` for
``SSE_RESPONSE_BROADCAST``; ``W001``: ``ATOMIC_REQUESTS`` with a broadcast
backend that publishes before the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

__all__ = ["check_settings"]


@register()
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check every ``SSE_RESPONSE_*`` setting that is set."""
    errors: list[CheckMessage] = []
    errors.extend(_check_max_sync_streams())
    errors.extend(_check_end_streams_on_signals())
    errors.extend(_check_metrics())
    errors.extend(_check_broadcast())
    if not errors:
        errors.extend(_check_atomic_requests())
    return errors


def _check_max_sync_streams() -> list[CheckMessage]:
    name = "SSE_RESPONSE_MAX_SYNC_STREAMS"
    if not hasattr(settings, name):
        return []
    value = getattr(settings, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return [
            Error(
                f"{name} must be a non-negative int, not {value!r}.",
                hint="It is how many sync sources may run at once in a process "
                "(default 1000); 0 refuses every sync source.",
                id="sse_response.E001",
            )
        ]
    return []


def _check_end_streams_on_signals() -> list[CheckMessage]:
    name = "SSE_RESPONSE_END_STREAMS_ON_SIGNALS"
    if not hasattr(settings, name):
        return []
    value = getattr(settings, name)
    if not isinstance(value, bool):
        return [
            Error(
                f"{name} must be True or False, not {value!r}.",
                hint="True (the default) makes SIGTERM and SIGINT end open "
                "streams before the server's own handlers run.",
                id="sse_response.E002",
            )
        ]
    return []


def _check_metrics() -> list[CheckMessage]:
    name = "SSE_RESPONSE_METRICS"
    if not hasattr(settings, name):
        return []
    value = getattr(settings, name)
    if not isinstance(value, bool):
        return [
            Error(
                f"{name} must be True or False, not {value!r}.",
                hint="True (the default) registers the Prometheus metrics when "
                "prometheus_client is installed.",
                id="sse_response.E003",
            )
        ]
    return []


#: The URL schemes of one Redis.
URL_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_broadcast() -> list[CheckMessage]:
    """``SSE_RESPONSE_BROADCAST``: ids ``sse_response.E010`` to ``E029``."""
    name = "SSE_RESPONSE_BROADCAST"
    if not hasattr(settings, name):
        return []
    value = getattr(settings, name)
    shape = (
        'It is shaped like CACHES["default"]: {"BACKEND": '
        '"sse_response.broadcast.RedisBackend", "LOCATION": '
        '"redis://127.0.0.1:6379/0", "OPTIONS": {"history": 1000}}.'
    )
    if not isinstance(value, dict):
        return [
            Error(
                f"{name} must be a dict, not {value!r}.",
                hint=shape,
                id="sse_response.E010",
            )
        ]
    errors: list[CheckMessage] = []
    unknown = sorted(set(value) - {"BACKEND", "LOCATION", "OPTIONS"}, key=str)
    if unknown:
        errors.append(
            Error(
                f"{name} has unknown keys: {', '.join(map(repr, unknown))}.",
                hint=shape,
                id="sse_response.E011",
            )
        )
    backend = value.get("BACKEND")
    backend_class = None
    if not isinstance(backend, str):
        errors.append(
            Error(
                f'{name}["BACKEND"] must be the dotted path of a backend class, '
                f"not {backend!r}.",
                hint='For example "sse_response.broadcast.MemoryBackend".',
                id="sse_response.E012",
            )
        )
    else:
        from django.utils.module_loading import import_string

        from sse_response.broadcast.base import BaseBackend

        try:
            backend_class = import_string(backend)
        except ImportError as exc:
            errors.append(
                Error(
                    f'{name}["BACKEND"] = {backend!r} cannot be imported: {exc}.',
                    hint="The RedisBackend needs redis-py: "
                    "pip install 'sse_response[redis]'.",
                    id="sse_response.E013",
                )
            )
        else:
            if not (
                isinstance(backend_class, type)
                and issubclass(backend_class, BaseBackend)
            ):
                errors.append(
                    Error(
                        f'{name}["BACKEND"] = {backend!r} is not a subclass of '
                        "sse_response.broadcast.BaseBackend.",
                        id="sse_response.E014",
                    )
                )
                backend_class = None
    options = value.get("OPTIONS", {})
    if not isinstance(options, dict):
        errors.append(
            Error(
                f'{name}["OPTIONS"] must be a dict, not {options!r}.',
                id="sse_response.E015",
            )
        )
        options = {}
    for option, error_id in (("history", "E016"), ("buffer", "E017")):
        if option in options:
            number = options[option]
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                errors.append(
                    Error(
                        f'{name}["OPTIONS"]["{option}"] must be a positive int, '
                        f"not {number!r}.",
                        hint="history: events kept per channel for replay; buffer: "
                        "bytes that may wait for one subscriber.",
                        id=f"sse_response.{error_id}",
                    )
                )
    if backend_class is not None and backend_class.__name__ == "RedisBackend":
        errors.extend(_check_redis(name, value.get("LOCATION"), options))
    if backend_class is not None and backend_class.__name__ == "PostgresBackend":
        errors.extend(_check_postgres_location(name, value.get("LOCATION")))
    return errors


def _check_redis(
    name: str, location: object, options: dict[str, Any]
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    cluster = options.get("cluster", False)
    sentinel = options.get("sentinel")
    urls = [location] if isinstance(location, str) else location
    schemes = ("redis://", "rediss://") if cluster or sentinel else URL_SCHEMES
    if (
        not isinstance(urls, (list, tuple))
        or not urls
        or not all(isinstance(url, str) and url.startswith(schemes) for url in urls)
    ):
        errors.append(
            Error(
                f'{name}["LOCATION"] must be a redis:// URL for the RedisBackend '
                f"(or a list of them, for a cluster or Sentinels), not {location!r}.",
                hint='For example "redis://127.0.0.1:6379/0"; for a cluster, any '
                'node (or a list of them) with "OPTIONS": {"cluster": True}; for '
                "Sentinel, the Sentinels' URLs with "
                '"OPTIONS": {"sentinel": "mymaster"}.',
                id="sse_response.E018",
            )
        )
    elif len(urls) > 1 and not (cluster or sentinel):
        errors.append(
            Error(
                f'{name}["LOCATION"] lists several URLs, which only a cluster '
                "(the seed nodes) or Sentinel (the Sentinels) takes.",
                hint='Add "cluster": True or "sentinel": "<master name>" to '
                "OPTIONS, or give one URL.",
                id="sse_response.E021",
            )
        )
    if not isinstance(cluster, bool):
        errors.append(
            Error(
                f'{name}["OPTIONS"]["cluster"] must be True or False, not {cluster!r}.',
                id="sse_response.E022",
            )
        )
    if sentinel is not None and (not isinstance(sentinel, str) or not sentinel):
        errors.append(
            Error(
                f'{name}["OPTIONS"]["sentinel"] must be the name of the master '
                f"the Sentinels watch, not {sentinel!r}.",
                hint='For example "mymaster", as in "sentinel monitor mymaster ...".',
                id="sse_response.E023",
            )
        )
    if cluster is True and sentinel:
        errors.append(
            Error(
                f'{name}["OPTIONS"] sets both "cluster" and "sentinel"; a Redis '
                "is one or the other.",
                id="sse_response.E024",
            )
        )
    prefix = options.get("prefix", "sse_response")
    if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
        errors.append(
            Error(
                f'{name}["OPTIONS"]["prefix"] must be a non-empty str without '
                f"braces, not {prefix!r}.",
                hint="Braces would change the hash slot of the keys on a cluster.",
                id="sse_response.E025",
            )
        )
    timeout = options.get("socket_timeout", 5.0)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or timeout <= 0
    ):
        errors.append(
            Error(
                f'{name}["OPTIONS"]["socket_timeout"] must be a positive number of '
                f"seconds, not {timeout!r}.",
                id="sse_response.E026",
            )
        )
    interval = options.get("health_check_interval", 5.0)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or interval <= 0
    ):
        errors.append(
            Error(
                f'{name}["OPTIONS"]["health_check_interval"] must be a positive '
                f"number of seconds, not {interval!r}.",
                hint="Seconds of silence after which the reader PINGs a PUB/SUB "
                "connection (default 5); one that stays silent that long again "
                "(or socket_timeout, if longer) is taken for lost. Keep it below "
                "the idle timeout of any NAT or load balancer on the way.",
                id="sse_response.E028",
            )
        )
    kwargs = options.get("sentinel_kwargs", {})
    if not isinstance(kwargs, dict):
        errors.append(
            Error(
                f'{name}["OPTIONS"]["sentinel_kwargs"] must be a dict of connection '
                f"arguments for the Sentinels, not {kwargs!r}.",
                hint='For example {"password": "..."}.',
                id="sse_response.E027",
            )
        )
    return errors


def _check_postgres_location(name: str, location: object) -> list[CheckMessage]:
    from django.db import DEFAULT_DB_ALIAS

    alias = DEFAULT_DB_ALIAS if location is None else location
    databases = settings.DATABASES
    if not isinstance(alias, str) or alias not in databases:
        return [
            Error(
                f'{name}["LOCATION"] must name a database of DATABASES for the '
                f"PostgresBackend, not {location!r}.",
                hint=f'One of {sorted(databases)!r}; "default" when absent.',
                id="sse_response.E019",
            )
        ]
    engine = str(databases[alias].get("ENGINE", ""))
    if "postgresql" not in engine and "postgis" not in engine:
        return [
            Error(
                f'The database {alias!r} of {name}["LOCATION"] must be a '
                f"PostgreSQL one for the PostgresBackend, not {engine!r}.",
                id="sse_response.E020",
            )
        ]
    return []


def _check_atomic_requests() -> list[CheckMessage]:
    """
    ``sse_response.W001``: a database with ``ATOMIC_REQUESTS`` runs every
    view in a transaction, and ``publish()`` on a backend outside that
    database's transaction sends the event before the commit (and after a
    rollback).
    """
    from django.db import DEFAULT_DB_ALIAS

    broadcast = getattr(settings, "SSE_RESPONSE_BROADCAST", None) or {}
    backend = str(broadcast.get("BACKEND", "sse_response.broadcast.MemoryBackend"))
    same_database = None
    if backend.rsplit(".", 1)[-1] == "PostgresBackend":
        same_database = broadcast.get("LOCATION") or DEFAULT_DB_ALIAS
    return [
        Warning(
            f"DATABASES[{alias!r}] has ATOMIC_REQUESTS, and the broadcast "
            f"backend {backend.rsplit('.', 1)[-1]} stores an event outside its "
            "transaction: publish() in a view sends the event before the view's "
            "transaction commits, and even if it rolls back.",
            hint="Call sse_response.broadcast.publish_on_commit() in views instead "
            "(it publishes once the transaction commits), or add "
            '"sse_response.W001" to SILENCED_SYSTEM_CHECKS if publishing at once '
            "is what you want.",
            id="sse_response.W001",
        )
        for alias, database in settings.DATABASES.items()
        if database.get("ATOMIC_REQUESTS") and alias != same_database
    ]
