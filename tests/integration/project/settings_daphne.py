"""The test project's settings for daphne's ``runserver`` (daphne's app first)."""

from tests.integration.project.settings import *  # noqa: F403

INSTALLED_APPS = ["daphne", *INSTALLED_APPS]  # noqa: F405
ASGI_APPLICATION = "tests.integration.project.asgi.application"
