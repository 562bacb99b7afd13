"""The job page for finance: what a transcription cost and why (read-only; the transcript itself is not shown)."""

from __future__ import annotations

from django.contrib import admin

from billing.models import LedgerEntry
from transcription.models import Transcription

MONEY_FIELDS = ["held_tokens", "tokens", "billed_tokens", "token_rule", "cache_hit", "cache_source"]
JOB_FIELDS = [
    "id", "tenant", "source", "api_key", "created_by", "status", "attempt", "error_code", "error_message",
    "created_at", "started_at", "finished_at", "filename", "size_bytes", "sha256", "model", "probed_duration_s",
    "duration_s", "speech_s", "truncated", "decode_ms", "vad_ms", "asr_ms", "deleted_at", "audio_expired_at",
    "transcript_expired_at", "webhook_status", "webhook_attempts",
]  # fmt: skip


class LedgerInline(admin.TabularInline):
    """The job's money movements: hold, extensions, then one debit and/or release."""

    model = LedgerEntry
    fields = ["created_at", "kind", "available_delta", "held_delta", "available_after", "held_after"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Transcription)
class TranscriptionAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "tenant", "status", "source", "duration_s", "held_tokens", "billed_tokens",
                    "error_code", "cache_hit"]  # fmt: skip
    list_filter = ["status", "source", "cache_hit", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["tenant"]
    search_fields = ["=id", "tenant__slug", "=sha256", "error_code"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fieldsets = [(None, {"fields": JOB_FIELDS[:9]}), ("Money", {"fields": MONEY_FIELDS}),
                 ("Audio and timings", {"fields": JOB_FIELDS[9:]})]  # fmt: skip
    readonly_fields = JOB_FIELDS + MONEY_FIELDS
    inlines = [LedgerInline]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
