"""
The tables of :class:`~sse_response.broadcast.PostgresBackend`: the events
of each channel, each channel's last sequence number, and the epoch.

They are made by the app's migration, and used only by that backend; with
another backend they stay empty. Code that uses them stays in
``sse_response/broadcast/postgres.py``: these models only describe them.
"""

from __future__ import annotations

from django.db import models

from sse_response.broadcast.positions import MAX_CHANNEL_LENGTH

__all__ = [
    "BroadcastChannel",
    "BroadcastEpoch",
    "BroadcastEvent",
    "BroadcastPresence",
]


class BroadcastChannel(models.Model):
    """A channel, and the sequence number of its last event."""

    name = models.CharField(max_length=MAX_CHANNEL_LENGTH, primary_key=True)
    last_seq = models.BigIntegerField(default=0)

    class Meta:
        db_table = "sse_response_channel"

    def __str__(self) -> str:
        return f"{self.name} at {self.last_seq}"


class BroadcastEvent(models.Model):
    """
    One stored event: its channel, its sequence number there, and its
    encoded bytes without an id line (``NULL``: an order to end the
    channel's streams).
    """

    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=MAX_CHANNEL_LENGTH)
    seq = models.BigIntegerField()
    payload = models.BinaryField(null=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "sse_response_event"
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "seq"], name="sse_response_event_channel_seq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.seq}"


class BroadcastEpoch(models.Model):
    """The one row that names the epoch of the stored events."""

    id = models.PositiveSmallIntegerField(primary_key=True)
    epoch = models.CharField(max_length=64)

    class Meta:
        db_table = "sse_response_epoch"

    def __str__(self) -> str:
        return self.epoch


class BroadcastPresence(models.Model):
    """
    One process's streams on a channel: the JSON list of their presence
    info (``null`` for a stream without), until ``expires`` (the database's
    clock), which the process pushes forward while it lives.
    """

    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=MAX_CHANNEL_LENGTH)
    process = models.CharField(max_length=200)
    expires = models.DateTimeField(db_index=True)
    entries = models.TextField()

    class Meta:
        db_table = "sse_response_presence"
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "process"],
                name="sse_response_presence_channel_process",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} in {self.process}"
