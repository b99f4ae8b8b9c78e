"""
Settings for the demo site: embedded defaults, no database, no outside services.

Two environment variables change it:

* ``SSE_DEMO_HEARTBEAT``: seconds without an event before the streams send a
  heartbeat comment (default 15; ``none`` turns heartbeats off).
* ``SSE_DEMO_SERVER``: the name of the server, shown on the index page (the
  site guesses it when this is not set).
"""

import os
from pathlib import Path


def _heartbeat(value: str) -> float | None:
    if value.strip().lower() in {"", "none", "off", "0"}:
        return None
    return float(value)


BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "sse_response demo (not secret: do not deploy)"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
INSTALLED_APPS = ["django.contrib.staticfiles", "sse_response"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "demo.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "context_processors": ["django.template.context_processors.request"]
        },
    }
]
# No database: the resumable counter keeps its state in the event ids.
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
# shared-event-source.js, served by the demo itself (DEBUG is on).
STATIC_URL = "static/"

#: Seconds without an event before a stream sends a heartbeat comment.
SSE_DEMO_HEARTBEAT = _heartbeat(os.environ.get("SSE_DEMO_HEARTBEAT", "15"))
