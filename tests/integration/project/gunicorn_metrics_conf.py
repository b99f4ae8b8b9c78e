"""
Gunicorn settings for prometheus_client's multiprocess mode, as
docs/production.md gives them: a worker that exits has its live gauges
(sse_response_streams_open) dropped from the sum.
"""

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
