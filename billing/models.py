"""Balances in tokens and the append-only ledger that explains every change of them."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove a ledger entry."""


class LedgerQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Ledger entries are append-only; write a new entry instead.")

    def delete(self):
        raise AppendOnlyError("Ledger entries are append-only; write a new entry instead.")


class BalanceAccount(models.Model):
    """The stored balance; always equal to the sums of the tenant's ledger entries."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.PROTECT, related_name="account")
    available = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant.slug}: {self.available} available, {self.held} held"


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        TOPUP = "topup", "Top-up"
        HOLD = "hold", "Hold"
        RELEASE = "release", "Release"
        DEBIT = "debit", "Debit"
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Dispute"
        DISPUTE_REVERSAL = "dispute_reversal", "Dispute reversal"
        ADJUSTMENT = "adjustment", "Adjustment"

    JOB_KINDS = (Kind.HOLD, Kind.RELEASE, Kind.DEBIT)
    EXTERNAL_KINDS = (Kind.TOPUP, Kind.REFUND, Kind.DISPUTE, Kind.DISPUTE_REVERSAL)

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Signed changes to the two buckets. A hold moves tokens available -> held; a debit
    # removes them from held; a release moves them back.
    available_delta = models.BigIntegerField()
    held_delta = models.BigIntegerField(default=0)
    available_after = models.BigIntegerField()
    held_after = models.BigIntegerField()
    job = models.ForeignKey(
        "transcription.Transcription", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    external_ref = models.CharField(max_length=255, blank=True, default="", db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_label = models.CharField(max_length=64, blank=True, default="")
    memo = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            # At most one hold, one release and one debit per job, whatever retries do.
            models.UniqueConstraint(
                fields=["job", "kind"], condition=Q(kind__in=["hold", "release", "debit"]), name="uniq_job_money_kind"
            ),
            # At most one credit or reversal per external (Stripe) object.
            models.UniqueConstraint(
                fields=["kind", "external_ref"],
                condition=Q(kind__in=["topup", "refund", "dispute", "dispute_reversal"]),
                name="uniq_external_money_kind",
            ),
            models.CheckConstraint(condition=~Q(kind__in=["hold", "release", "debit"]) | Q(job__isnull=False), name="job_kinds_have_job"),
            models.CheckConstraint(
                condition=~Q(kind__in=["grant", "adjustment"]) | ~Q(memo=""), name="manual_entries_have_memo"
            ),
        ]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Ledger entries are append-only; write a new entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Ledger entries are append-only; write a new entry instead.")

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.available_delta:+}/{self.held_delta:+} ({self.tenant_id})"
