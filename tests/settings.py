"""Django settings for the test suite: no database is needed by the core."""

SECRET_KEY = "sse_response tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["sse_response"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
LOGGING_CONFIG = None
