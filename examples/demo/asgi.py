"""
The ASGI application of the demo site: Django's, wrapped so that the open
event streams end when the server is told to stop.

A server waits for its open requests to finish before it exits, and an
event stream never finishes. So on Ctrl-C (SIGINT) or SIGTERM the open
streams end first: each sends a ``retry:`` hint and its source's
``finally`` runs; then the server's own handler runs, and its shutdown has
nothing left to wait for. The browser reconnects with its Last-Event-ID
once the server is back.
"""

import os

from django.core.asgi import get_asgi_application

from sse_response.shutdown import EndStreamsOnShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

application = EndStreamsOnShutdown(get_asgi_application())
