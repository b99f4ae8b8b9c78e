"""
Django settings for the test suite. The core needs no database; the tests of
streams that use the ORM (tests/test_orm.py) use sqlite and tests.ormapp.
"""

SECRET_KEY = "sse_response tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["sse_response", "tests.ormapp"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
LOGGING_CONFIG = None
