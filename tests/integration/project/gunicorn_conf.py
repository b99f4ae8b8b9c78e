"""
Gunicorn settings for event streams: the server hook that ends open streams
when a worker is told to stop (the recipe of docs/deployment.md).
"""

from sse_response.gunicorn import post_worker_init

__all__ = ["post_worker_init"]
