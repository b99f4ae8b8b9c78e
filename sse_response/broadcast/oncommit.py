"""
Publishing when a database transaction commits, on every backend.

:func:`publish_on_commit` is what a view inside ``transaction.atomic()`` (or
with ``ATOMIC_REQUESTS``) and a ``post_save`` handler should call: the event
goes out once the change it announces is visible to every client that
reacts to it by fetching the row, and never for a change that was rolled
back. It checks and encodes the message at once, so a bad one raises in the
caller, and hands the store to Django's ``transaction.on_commit()``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from sse_response.body import refuse_in_event_loop

__all__ = ["PendingPublish", "publish_on_commit"]

logger = logging.getLogger("sse_response.broadcast")


class PendingPublish:
    """
    One event waiting for its transaction to commit: the callback that
    :func:`publish_on_commit` gives ``transaction.on_commit()``. A test reads
    ``channel`` and ``message`` from the callbacks that Django's
    ``captureOnCommitCallbacks()`` collects.
    """

    __slots__ = ("channel", "message", "payload")

    def __init__(self, channel: str, message: Mapping[str, Any], payload: bytes):
        self.channel = channel
        #: The message as it was given.
        self.message = message
        #: The message encoded (without id), as it will be stored.
        self.payload = payload

    def __repr__(self) -> str:
        return f"<PendingPublish to {self.channel!r}: {dict(self.message)!r}>"

    def __call__(self) -> None:
        """Store the event; log a failure, never raise it (the commit is done)."""
        from sse_response import metrics
        from sse_response.broadcast.backends import get_backend

        try:
            backend = get_backend()
            started = time.perf_counter()
            backend.append(self.channel, self.payload)
            metrics.observe_publish(
                metrics.backend_label(backend), time.perf_counter() - started
            )
        except Exception:
            logger.exception(
                "Publishing an event to %r after its transaction committed "
                "failed; the event is lost.",
                self.channel,
            )


def publish_on_commit(
    channel: str,
    message: Mapping[str, Any],
    *,
    using: str | None = None,
    json_encoder: type[json.JSONEncoder] | None = None,
) -> None:
    """
    Publish ``message`` to ``channel`` when the transaction open on the
    database ``using`` (Django's default one when ``None``) commits; never
    if it rolls back; at once when no transaction is open. Inside nested
    ``atomic()`` blocks it waits for the outermost one, and a savepoint that
    rolls back drops it, exactly as ``transaction.on_commit()`` does.

    The message is checked and encoded now, as :func:`publish` does it, so
    that a bad message or channel raises here
    (:class:`~sse_response.InvalidMessageError`,
    :class:`InvalidChannelError`). Returns ``None``: the event has no id
    until it is stored. A backend that fails to store it after the commit
    is logged on the ``sse_response.broadcast`` logger, and never raised,
    so the committed request does not turn into an error (outside a
    transaction too, for the same contract). Like Django's transactions, it
    is for sync code: inside a running event loop it raises
    ``SynchronousOnlyOperation``.
    """
    from sse_response.broadcast import _payload
    from sse_response.broadcast.positions import check_channel

    refuse_in_event_loop(
        "publish_on_commit() belongs with Django's transactions, which are "
        "sync: call it from sync code (in async code, with the transaction, "
        "inside sync_to_async()), or use 'await apublish()' where there is "
        "no transaction."
    )
    check_channel(channel)
    payload = _payload(message, json_encoder)
    # The callback logs its own failures; robust=True also keeps anything it
    # might still raise from stopping the on_commit callbacks after it.
    transaction.on_commit(
        PendingPublish(channel, message, payload), using=using, robust=True
    )
