"""
The Redis broadcast backend: :class:`RedisBackend` (``backend``), where its
channels live (``topology``: one Redis, Sentinels, a cluster), its PUB/SUB
reader (``reader``), what it reads parsed (``wire``), and its Lua script
(``lua/``).
"""

from sse_response.broadcast.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
