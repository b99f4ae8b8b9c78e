"""
Settings for the demo site: embedded defaults, no database, no outside services.

Two environment variables change it:

* ``SSE_DEMO_HEARTBEAT``: seconds without an event before the streams send a
  heartbeat comment (default 15; ``none`` turns heartbeats off).
* ``SSE_DEMO_SERVER``: the name of the server, shown on the index page (the
  site guesses it when this is not set).
* ``SSE_DEMO_REDIS``: a ``redis://`` URL; the broadcast page then publishes
  through Redis, so that it works with several server processes (by default
  its history lives in the process: one process, no outside service).
* ``SSE_DEMO_DATABASE_URL``: a ``postgresql://user:password@host:port/name``
  URL; the site then has that database, and the broadcast page publishes
  through it (run ``manage.py migrate`` once), with no Redis.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit


def _heartbeat(value: str) -> float | None:
    if value.strip().lower() in {"", "none", "off", "0"}:
        return None
    return float(value)


BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "sse_response demo (not secret: do not deploy)"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
# Django's defaults (what startproject writes), less the admin, which needs a
# database: the demo is what users copy, so CSRF protection and the rest are on.
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "sse_response",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Sessions in a signed cookie: no database needed.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
ROOT_URLCONF = "demo.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# No database: the resumable counter keeps its state in the event ids.
DATABASES: dict[str, dict[str, str]] = {}
if os.environ.get("SSE_DEMO_DATABASE_URL"):
    _url = urlsplit(os.environ["SSE_DEMO_DATABASE_URL"])
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(_url.path.lstrip("/")),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
USE_TZ = True
# shared-event-source.js, served by the demo itself (DEBUG is on).
STATIC_URL = "static/"

#: Seconds without an event before a stream sends a heartbeat comment.
SSE_DEMO_HEARTBEAT = _heartbeat(os.environ.get("SSE_DEMO_HEARTBEAT", "15"))

# The broadcast page: in the process by default (make demo), in PostgreSQL or
# Redis when SSE_DEMO_DATABASE_URL or SSE_DEMO_REDIS names one (several gunicorn
# workers, see the README).
if DATABASES:
    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.PostgresBackend",
        "OPTIONS": {"history": 200},
    }
elif os.environ.get("SSE_DEMO_REDIS"):
    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": os.environ["SSE_DEMO_REDIS"],
        "OPTIONS": {"history": 200},
    }
else:
    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.MemoryBackend",
        "OPTIONS": {"history": 200},
    }
