"""
Prometheus metrics of event streams and broadcast, through
``prometheus_client`` (``pip install 'sse_response[prometheus]'``).

When the ``sse_response`` app is ready and ``prometheus_client`` can be
imported, :func:`install` registers the metrics below in its default
registry (so ``prometheus_client.generate_latest()`` and
django-prometheus's ``/metrics`` show them) and feeds them from the
signals of :mod:`sse_response.signals`. ``SSE_RESPONSE_METRICS = False``
turns them off. Under gunicorn's workers they work in prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): the gauges sum the live
processes (``livesum``), so gunicorn's ``child_exit`` hook must call
``prometheus_client.multiprocess.mark_process_dead(worker.pid)``.

Nothing is labelled by channel or path (unbounded label values would make
unbounded series); ``reason`` and ``backend`` take a few known values.

============================================  =========  ===================
name                                          type       labels
============================================  =========  ===================
``sse_response_streams_open``                 gauge
``sse_response_streams_started_total``        counter
``sse_response_streams_finished_total``       counter    ``reason``
``sse_response_stream_duration_seconds``      histogram
``sse_response_events_sent_total``            counter
``sse_response_bytes_sent_total``             counter
``sse_response_lingering_sources_total``      counter
``sse_response_resets_total``                 counter
``sse_response_backend_reconnects_total``     counter    ``backend``
``sse_response_publish_duration_seconds``     histogram  ``backend``
``sse_response_publish_lag_seconds``          histogram
============================================  =========  ===================

The broadcast layer reports through :func:`observe_publish`,
:func:`backend_reconnected` and :func:`observe_lag`, which cost one check
of a global when the metrics are off or prometheus_client is missing.
"""

from __future__ import annotations

import threading
from typing import Any

from sse_response import body, lingering, signals

__all__ = [
    "backend_label",
    "backend_reconnected",
    "enabled",
    "install",
    "observe_lag",
    "observe_publish",
]

#: Buckets of the publish duration: a store's round trip, from an in-process
#: append (tens of microseconds) to a slow network (seconds).
PUBLISH_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
#: Buckets of the publish-to-send lag.
LAG_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Buckets of how long streams last: a reconnect loop to a day.
DURATION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)


class _Metrics:
    """The metrics of one process, once installed."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        def counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, documentation, labels, registry=registry)

        self.streams_open = Gauge(
            "sse_response_streams_open",
            "Event streams open now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.streams_started = counter(
            "sse_response_streams_started", "Event streams started."
        )
        self.streams_finished = counter(
            "sse_response_streams_finished",
            "Event streams finished, by why they ended.",
            ("reason",),
        )
        self.stream_duration = Histogram(
            "sse_response_stream_duration_seconds",
            "How long event streams lasted.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.events_sent = counter(
            "sse_response_events_sent",
            "Events sent (heartbeats and comments not counted).",
        )
        self.bytes_sent = counter(
            "sse_response_bytes_sent", "Bytes of event streams handed to the server."
        )
        self.lingering_sources = counter(
            "sse_response_lingering_sources",
            "Sync sources still running (not yielding) "
            f"{lingering.LINGER_WARNING_AFTER:g} s after their stream ended; "
            "see IDLE.",
        )
        self.resets = counter(
            "sse_response_resets", "stream-reset events sent by broadcast streams."
        )
        self.backend_reconnects = counter(
            "sse_response_backend_reconnects",
            "Times a broadcast backend's listener reconnected to its service.",
            ("backend",),
        )
        self.publish_duration = Histogram(
            "sse_response_publish_duration_seconds",
            "How long storing a published event took.",
            ("backend",),
            buckets=PUBLISH_BUCKETS,
            registry=registry,
        )
        self.publish_lag = Histogram(
            "sse_response_publish_lag_seconds",
            "From publishing an event to a stream sending it.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        # Every reason from the start, at 0, so that rates can be taken.
        self._finished_by_reason = {
            reason: self.streams_finished.labels(reason)
            for reason in sorted(signals.REASONS)
        }
        self._events_inc = self.events_sent.inc
        self._bytes_inc = self.bytes_sent.inc

    # Receivers of the signals, and the body's and lingering's observers.

    def stream_started(self, **kwargs: Any) -> None:
        self.streams_open.inc()
        self.streams_started.inc()

    def stream_finished(self, *, reason: str, duration: float, **kwargs: Any) -> None:
        self.streams_open.dec()
        counter = self._finished_by_reason.get(reason)
        if counter is None:
            counter = self.streams_finished.labels(reason)
        counter.inc()
        self.stream_duration.observe(duration)

    def stream_reset(self, **kwargs: Any) -> None:
        self.resets.inc()

    def chunk_sent(self, events: int, size: int) -> None:
        if events:
            self._events_inc(events)
        self._bytes_inc(size)

    def source_lingers(self) -> None:
        self.lingering_sources.inc()


_metrics: _Metrics | None = None
_install_lock = threading.Lock()


def enabled() -> bool:
    """Whether the metrics are installed in this process."""
    return _metrics is not None


def install(registry: Any = None) -> bool:
    """
    Register the metrics (in ``registry``, prometheus_client's default one
    when ``None``) and start feeding them; return whether they are on.

    Called by the ``sse_response`` app when Django is ready. Does nothing,
    and returns ``False``, when ``SSE_RESPONSE_METRICS`` is ``False`` or
    ``prometheus_client`` is not installed; calling it again changes
    nothing.
    """
    global _metrics
    from django.conf import settings

    if getattr(settings, "SSE_RESPONSE_METRICS", True) is False:
        return False
    try:
        import prometheus_client
    except ImportError:
        return False
    with _install_lock:
        if _metrics is not None:
            return True
        metrics = _Metrics(prometheus_client.REGISTRY if registry is None else registry)
        # Strong references: the receivers are bound methods of an object
        # that lives as long as the process.
        signals.stream_started.connect(
            metrics.stream_started, weak=False, dispatch_uid="sse_response.metrics"
        )
        signals.stream_finished.connect(
            metrics.stream_finished, weak=False, dispatch_uid="sse_response.metrics"
        )
        signals.stream_reset.connect(
            metrics.stream_reset, weak=False, dispatch_uid="sse_response.metrics"
        )
        body.chunk_observer = metrics.chunk_sent
        lingering.lingering_observer = metrics.source_lingers
        _metrics = metrics
    return True


def backend_label(backend: object) -> str:
    """
    The ``backend`` label of a broadcast backend: its class's name, lower
    case, without ``Backend`` (``"memory"``, ``"redis"``, ``"postgres"``).
    """
    name = type(backend).__name__
    return (name.removesuffix("Backend") or name).lower()


def observe_publish(backend: str, seconds: float) -> None:
    """Record that storing one published event on ``backend`` took ``seconds``."""
    metrics = _metrics
    if metrics is not None:
        metrics.publish_duration.labels(backend).observe(seconds)


def backend_reconnected(backend: str) -> None:
    """Record that ``backend``'s listener reconnected to its service."""
    metrics = _metrics
    if metrics is not None:
        metrics.backend_reconnects.labels(backend).inc()


def observe_lag(seconds: float) -> None:
    """Record that a stream sent an event ``seconds`` after it was published."""
    metrics = _metrics
    if metrics is not None:
        metrics.publish_lag.observe(seconds)
