"""
The ASGI application: Django's, wrapped so that SIGTERM ends every open
stream before the server shuts down (the recipe of docs/deployment.md).
"""

import os

from django.core.asgi import get_asgi_application

from sse_response.shutdown import EndStreamsOnShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.project.settings")

application = EndStreamsOnShutdown(get_asgi_application())
