"""
Gunicorn's settings for the demo site; gunicorn reads ./gunicorn.conf.py by
itself, so ``gunicorn demo.wsgi`` run from this directory uses them.
"""

# On Ctrl-C or SIGTERM, a worker ends its open event streams first (each with
# a retry: hint), rather than wait graceful_timeout for them to end.
from sse_response.gunicorn import post_worker_init  # noqa: F401

bind = "127.0.0.1:8000"
# Under WSGI each open stream holds a thread: the sync worker serves one
# request at a time and kills a worker whose request outlasts its timeout.
worker_class = "gthread"
threads = 32
