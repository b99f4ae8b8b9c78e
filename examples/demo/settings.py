"""Settings for the demo site: embedded defaults, no database, no outside services."""

SECRET_KEY = "sse_response demo (not secret: do not deploy)"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "demo.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
