"""A transcription job. This row, not the task queue, is the truth about a job."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

# Stored audio lives under AUDIO_DIR/<tenant id>/<transcription id>; the orphan sweep lists this folder.
AUDIO_DIR = "audio"


def audio_upload_to(instance: "Transcription", filename: str) -> str:
    # Never reuse the client's file name on disk.
    return f"{AUDIO_DIR}/{instance.tenant_id}/{instance.pk}"


class Transcription(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    class Source(models.TextChoices):
        API = "api", "API"
        OPENAI = "openai", "OpenAI-compatible API"
        DASHBOARD = "dashboard", "Dashboard"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="transcriptions")
    api_key = models.ForeignKey("tenants.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)

    # Input
    audio = models.FileField(upload_to=audio_upload_to, blank=True, max_length=255)
    filename = models.CharField(max_length=255, blank=True, default="")
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    options = models.JSONField(default=dict)  # language, itn, vad, hotwords (normalized)
    options_hash = models.CharField(max_length=64, default="")
    model = models.CharField(max_length=255, default="")  # configured at submit; the worker records what ran
    webhook_url = models.URLField(max_length=1000, blank=True, default="")
    # NULL (not "") when absent, so the unique (tenant, idempotency_key) constraint ignores it.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_hash = models.CharField(max_length=64, blank=True, default="")
    probed_duration_s = models.FloatField(default=0)

    # State
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempt = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set when the tenant's retention removed the audio / the transcript (the token counts and ledger stay).
    audio_expired_at = models.DateTimeField(null=True, blank=True)
    transcript_expired_at = models.DateTimeField(null=True, blank=True)

    # Timings of the last attempt
    decode_ms = models.PositiveIntegerField(null=True, blank=True)
    vad_ms = models.PositiveIntegerField(null=True, blank=True)
    asr_ms = models.PositiveIntegerField(null=True, blank=True)
    speech_s = models.FloatField(null=True, blank=True)

    # Result
    duration_s = models.FloatField(null=True, blank=True)
    truncated = models.BooleanField(default=False)
    language = models.CharField(max_length=16, blank=True, default="")
    text = models.TextField(blank=True, default="")
    segments = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)  # for the caller, e.g. hotwords the model could not use
    cache_hit = models.BooleanField(default=False)
    cache_source = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")

    # Money (the ledger is the truth; these are the job's view of it)
    held_tokens = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(null=True, blank=True)
    billed_tokens = models.BigIntegerField(null=True, blank=True)
    token_rule = models.CharField(max_length=8, blank=True, default="")

    # Webhook delivery
    webhook_status = models.CharField(max_length=16, blank=True, default="")  # "" until the first attempt
    webhook_attempts = models.PositiveIntegerField(default=0)
    webhook_error = models.CharField(max_length=500, blank=True, default="")  # why the last attempt failed

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created"),
            models.Index(fields=["tenant", "sha256", "options_hash"], name="job_cache_lookup"),
            models.Index(fields=["status", "lease_expires_at"], name="job_sweep"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="uniq_job_idempotency",
            ),
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="job_progress_0_1"),
            models.CheckConstraint(
                condition=Q(billed_tokens__isnull=True) | Q(billed_tokens__lte=models.F("held_tokens")),
                name="job_billed_le_held",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class HotwordList(models.Model):
    """A saved list of domain words (one per line) that biases recognition where the model supports it."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="hotword_lists")
    name = models.CharField(max_length=100)
    words = models.TextField(help_text="One word or phrase per line.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_hotword_list_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def word_list(self) -> list[str]:
        return [w.strip() for w in self.words.splitlines() if w.strip()]


class Speaker(models.Model):
    """A tenant's enrolled speaker: a name and a voiceprint (the mean speaker embedding of its samples).

    The enrollment audio (16-bit PCM, decoded by the web tier) is kept only until the worker has embedded it.
    Deleting the row deletes the embedding; nothing else holds a copy.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="speakers")
    name = models.CharField(max_length=100)
    # The caller's own id (Xiaozhi's speaker_id); NULL when absent, so the unique constraint ignores it.
    external_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    pending_audio = models.BinaryField(null=True, blank=True)  # PCM16 of the samples until embedded
    samples = models.PositiveIntegerField(default=0)
    speech_s = models.FloatField(default=0)
    embedding = models.BinaryField(null=True, blank=True)  # float32, L2-normalized
    embedding_model = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "created_at"]
        indexes = [models.Index(fields=["tenant", "name"], name="speaker_tenant_name")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"],
                condition=Q(external_id__isnull=False),
                name="uniq_speaker_external_id",
            )
        ]

    def __str__(self) -> str:
        return self.name


class SpeakerIdentification(models.Model):
    """One "who is speaking" question (Xiaozhi's /voiceprint/identify), answered by the worker."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    FINAL_STATUSES = (Status.DONE, Status.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    pending_audio = models.BinaryField(null=True, blank=True)  # PCM16 until answered
    candidates = models.JSONField(default=list)  # speaker ids (the tenant's, checked at submit)
    speaker = models.ForeignKey(Speaker, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    score = models.FloatField(null=True, blank=True)
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.pk} ({self.status})"
