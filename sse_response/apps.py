"""
The Django application: add ``"sse_response"`` to ``INSTALLED_APPS``.

The response works without it. Installed, it also checks the library's
settings (``manage.py check``), makes server shutdown end open streams on
every server, those that serve requests outside the main thread included
(see :mod:`sse_response.shutdown`), and registers the Prometheus metrics
when ``prometheus_client`` is installed (see :mod:`sse_response.metrics`).
"""

from __future__ import annotations

from django.apps import AppConfig


class SseResponseConfig(AppConfig):
    name = "sse_response"
    verbose_name = "Server-Sent Events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the module registers its checks.
        from sse_response import checks  # noqa: F401
        from sse_response.metrics import install
        from sse_response.shutdown import prepare

        prepare()
        install()
