"""
Gunicorn settings naming the explicit shutdown hook, which shutdown no longer
needs: servers.py passes this file only with ``SSE_IT_EXPLICIT_SHUTDOWN``, to
show that the hook and the automatic path do no harm together.
"""

from sse_response.gunicorn import post_worker_init

__all__ = ["post_worker_init"]
