"""
Settings of the Django project the integration tests serve with real servers.

``SSE_IT_STATE`` names the directory where the test sources report what
happened to them (see :mod:`tests.integration.project.views`).
"""

import os

SECRET_KEY = "sse_response integration tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["sse_response"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.integration.project.urls"
WSGI_APPLICATION = "tests.integration.project.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
LOGGING_CONFIG = None

if "SSE_IT_MAX_SYNC_STREAMS" in os.environ:
    SSE_RESPONSE_MAX_SYNC_STREAMS = int(os.environ["SSE_IT_MAX_SYNC_STREAMS"])

# A module of the test's own that the autoreloading servers watch: the reload
# tests change it to make the server reload.
if "SSE_IT_CODE" in os.environ:
    import sys

    sys.path.insert(0, os.environ["SSE_IT_CODE"])
    import reloadme  # type: ignore[import-not-found]  # noqa: F401

# The polling tests (test_polling.py) give the sources a sqlite database.
if "SSE_IT_DATABASE" in os.environ:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["SSE_IT_DATABASE"],
        }
    }

if "SSE_IT_POSTGRES" in os.environ:
    import json

    DATABASES = {"default": json.loads(os.environ["SSE_IT_POSTGRES"])}
    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.PostgresBackend",
        "OPTIONS": {"history": int(os.environ.get("SSE_IT_BROADCAST_HISTORY", "5000"))},
    }

if "SSE_IT_REDIS_URL" in os.environ:
    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": os.environ["SSE_IT_REDIS_URL"],
        "OPTIONS": {"history": int(os.environ.get("SSE_IT_BROADCAST_HISTORY", "5000"))},
    }

# The broadcast tests on a Redis Cluster (tests/broadcast/services.py): the
# seed URLs, as a JSON list.
if "SSE_IT_REDIS_CLUSTER" in os.environ:
    import json

    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": json.loads(os.environ["SSE_IT_REDIS_CLUSTER"]),
        "OPTIONS": {
            "cluster": True,
            "history": int(os.environ.get("SSE_IT_BROADCAST_HISTORY", "5000")),
        },
    }

# The presence tests (tests/broadcast/test_presence_processes.py) shorten the
# time after which a process that died is no longer listed.
if "SSE_IT_PRESENCE_TTL" in os.environ and "SSE_RESPONSE_BROADCAST" in globals():
    _options: dict[str, object] = SSE_RESPONSE_BROADCAST["OPTIONS"]  # type: ignore[assignment]
    _options["presence_ttl"] = float(os.environ["SSE_IT_PRESENCE_TTL"])
