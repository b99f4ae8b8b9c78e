"""The ASGI application of the benchmark's Django project."""

import os

import stacks
from django.core.asgi import get_asgi_application

stacks.start_from_environment()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")
application = get_asgi_application()
