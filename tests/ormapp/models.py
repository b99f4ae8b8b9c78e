from __future__ import annotations

from django.db import models


class Message(models.Model):
    """A message that streams send, as a new row appears."""

    text = models.CharField(max_length=200)

    class Meta:
        app_label = "ormapp"

    def __str__(self) -> str:
        return self.text
