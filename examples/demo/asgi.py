"""
The ASGI application of the demo site: Django's own, as ``startproject``
makes it.

A server waits for its open requests to finish before it exits, and an
event stream never finishes. The ``sse_response`` app takes care of that
with nothing more here: on Ctrl-C (SIGINT) or SIGTERM, and when
``uvicorn --reload`` restarts the site after a code change, the open
streams end first (each sends a ``retry:`` hint and its source's
``finally`` runs), then the server's own handler runs, and its shutdown has
nothing left to wait for. The browser reconnects with its Last-Event-ID
once the server is back.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

application = get_asgi_application()
