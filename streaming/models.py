"""A live recognition session (one WebSocket connection): what it cost and why it ended."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class StreamSession(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Protocol(models.TextChoices):
        FUNASR = "funasr", "FunASR runtime WebSocket"
        OPENAI_REALTIME = "openai_realtime", "OpenAI Realtime transcription"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="stream_sessions")
    api_key = models.ForeignKey("tenants.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A dashboard user streaming from /app/live/ (with a short-lived ticket instead of an API key).
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    protocol = models.CharField(max_length=16, choices=Protocol.choices, default=Protocol.FUNASR)
    mode = models.CharField(max_length=16)  # the protocol's mode (offline, online, 2pass; server_vad, manual)
    wav_name = models.CharField(max_length=255, blank=True, default="")
    model = models.CharField(max_length=255, default="")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True)
    worker = models.CharField(max_length=128, default="")  # host:pid of the stream worker serving it
    audio_seconds = models.FloatField(default=0)
    finals = models.PositiveIntegerField(default=0)
    tokens = models.PositiveIntegerField(default=0)  # rule v1 count of the finals delivered
    held_tokens = models.BigIntegerField(default=0)  # the open hold; 0 once settled
    billed_tokens = models.BigIntegerField(default=0)
    rule = models.CharField(max_length=8, default="v1")
    close_reason = models.CharField(max_length=32, blank=True, default="")
    close_message = models.CharField(max_length=255, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["tenant", "-started_at"], name="stream_tenant_started")]
        constraints = [
            models.CheckConstraint(condition=Q(billed_tokens__gte=0), name="stream_billed_non_negative"),
            models.CheckConstraint(condition=Q(status="open") | Q(held_tokens=0), name="stream_closed_holds_nothing"),
        ]

    def __str__(self) -> str:
        return f"{self.protocol}/{self.mode} {self.id} ({self.status})"
