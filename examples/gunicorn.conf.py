"""
Gunicorn's settings for the demo site; gunicorn reads ./gunicorn.conf.py by
itself, so ``gunicorn demo.wsgi`` run from this directory uses them.

Nothing here is about shutdown: the ``sse_response`` app makes Ctrl-C and
SIGTERM end the open event streams first (each with a retry: hint).
"""

bind = "127.0.0.1:8000"
# Under WSGI each open stream holds a thread: the sync worker serves one
# request at a time and kills a worker whose request outlasts its timeout.
worker_class = "gthread"
threads = 32
