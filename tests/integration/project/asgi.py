"""
The ASGI application: Django's, as ``startproject`` makes it. Shutdown needs
nothing more; with ``SSE_IT_EXPLICIT_SHUTDOWN`` set, it is wrapped in the
explicit helper, to show that the two do no harm together.
"""

import os

from django.core.asgi import get_asgi_application

from sse_response.shutdown import EndStreamsOnShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.project.settings")

application = get_asgi_application()

if os.environ.get("SSE_IT_EXPLICIT_SHUTDOWN"):
    application = EndStreamsOnShutdown(application)  # type: ignore[assignment]
