"""The test project's settings for Django's runserver (see runserver_wsgi.py)."""

from tests.integration.project.settings import *  # noqa: F403

WSGI_APPLICATION = "tests.integration.project.runserver_wsgi.application"
