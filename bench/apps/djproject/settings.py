"""
Settings for the benchmark's Django project: no database, no middleware,
so that what is measured is the response and the server, not the stack.
"""

import importlib.util
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "djproject.urls"
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
if importlib.util.find_spec("django_eventstream") is not None:
    INSTALLED_APPS.append("django_eventstream")
    # No EVENTSTREAM_STORAGE_CLASS and no EVENTSTREAM_REDIS: django-eventstream's
    # in-process mode, the only one that runs without outside services.
# The metrics rows: the app installed, so that its Prometheus metrics are
# registered when Django is ready (prometheus_client is in the bench venv).
if os.environ.get("BENCH_METRICS") == "1":
    INSTALLED_APPS.append("sse_response")
# sse_response refuses more than 1,000 sync streams per process by default
# (each holds a thread); the memory figure holds 10,000.
SSE_RESPONSE_MAX_SYNC_STREAMS = 10_100
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# Fan-out rows (bench/fanout.py): the broadcast backend, from the environment.
if os.environ.get("BENCH_DATABASE"):
    import json

    DATABASES = {"default": json.loads(os.environ["BENCH_DATABASE"])}
    if "sse_response" not in INSTALLED_APPS:
        INSTALLED_APPS.append("sse_response")
    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.PostgresBackend",
        "OPTIONS": {"history": 1000},
    }

if os.environ.get("BENCH_REDIS_URL"):
    SSE_RESPONSE_BROADCAST = {
        "BACKEND": "sse_response.broadcast.RedisBackend",
        "LOCATION": os.environ["BENCH_REDIS_URL"],
        "OPTIONS": {"history": 1000},
    }
    # The redis-cluster row of bench/channels.py: LOCATION is one of its masters.
    if os.environ.get("BENCH_REDIS_CLUSTER"):
        SSE_RESPONSE_BROADCAST["OPTIONS"]["cluster"] = True

# The django-eventstream fan-out peer: its Redis mode (bench/fanout.py).
if os.environ.get("BENCH_EVENTSTREAM_REDIS_PORT"):
    EVENTSTREAM_REDIS = {
        "host": "127.0.0.1",
        "port": int(os.environ["BENCH_EVENTSTREAM_REDIS_PORT"]),
        "db": 0,
    }

# The Django Channels fan-out peer (bench/apps/fanout_channels.py).
if os.environ.get("BENCH_CHANNELS_LAYER"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": {
                "core": "channels_redis.core.RedisChannelLayer",
                "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
            }[os.environ["BENCH_CHANNELS_LAYER"]],
            "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
        }
    }
