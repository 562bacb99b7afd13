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
        # The decoded audio ran past what the upload's probe promised: more held before more is recognized.
        HOLD_EXTEND = "hold_extend", "Hold extension"
        RELEASE = "release", "Release"
        DEBIT = "debit", "Debit"
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Dispute"
        DISPUTE_REVERSAL = "dispute_reversal", "Dispute reversal"
        ADJUSTMENT = "adjustment", "Adjustment"

    TRANSCRIPTION_KINDS = (Kind.HOLD, Kind.HOLD_EXTEND, Kind.RELEASE, Kind.DEBIT)
    EXTERNAL_KINDS = (Kind.TOPUP, Kind.REFUND, Kind.DISPUTE, Kind.DISPUTE_REVERSAL)

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Signed changes to the two buckets. A hold moves tokens available -> held; a debit
    # removes them from held; a release moves them back.
    available_delta = models.BigIntegerField()
    held_delta = models.BigIntegerField(default=0)
    available_after = models.BigIntegerField()
    held_after = models.BigIntegerField()
    # The transcription a hold/extension/release/debit is for. Billing code treats it as an opaque reference
    # (it writes and filters by transcription_id and never imports the transcription app).
    transcription = models.ForeignKey(
        "transcription.Transcription", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    # The live stream session a hold/extension/release/debit is for (the same opaque-reference rule).
    stream_session = models.ForeignKey(
        "streaming.StreamSession", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    external_ref = models.CharField(max_length=255, blank=True, default="", db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=64, blank=True, default="")
    memo = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            # At most one hold, one release and one debit per transcription, whatever retries do.
            models.UniqueConstraint(
                fields=["transcription", "kind"],
                condition=Q(kind__in=["hold", "release", "debit"]),
                name="uniq_transcription_money_kind",
            ),
            models.UniqueConstraint(
                fields=["stream_session", "kind"],
                condition=Q(kind__in=["hold", "release", "debit"]),
                name="uniq_stream_session_money_kind",
            ),
            # At most one credit or reversal per external (Stripe) object.
            models.UniqueConstraint(
                fields=["kind", "external_ref"],
                condition=Q(kind__in=["topup", "refund", "dispute", "dispute_reversal"]),
                name="uniq_external_money_kind",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["hold", "hold_extend", "release", "debit"])
                | (Q(transcription__isnull=False) & Q(stream_session__isnull=True))
                | (Q(transcription__isnull=True) & Q(stream_session__isnull=False)),
                name="hold_kinds_have_one_reference",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["grant", "adjustment"]) | ~Q(memo=""), name="manual_entries_have_memo"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.available_delta:+}/{self.held_delta:+} ({self.tenant_id})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Ledger entries are append-only; write a new entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Ledger entries are append-only; write a new entry instead.")


class Currency(models.TextChoices):
    USD = "usd", "USD"
    CNY = "cny", "CNY"


class TokenPack(models.Model):
    """A pack of tokens sold through Stripe Checkout; finance edits packs and prices in admin."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    tokens = models.BigIntegerField()
    active = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "tokens"]
        constraints = [models.CheckConstraint(condition=Q(tokens__gt=0), name="token_pack_tokens_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.tokens:,} tokens)"


class TokenPackPrice(models.Model):
    """The price of a pack in one currency, in the currency's minor unit (cents, fen)."""

    pack = models.ForeignKey(TokenPack, on_delete=models.CASCADE, related_name="prices")
    currency = models.CharField(max_length=3, choices=Currency.choices)
    unit_amount = models.PositiveIntegerField(help_text="In the minor unit: cents for USD, fen for CNY.")

    class Meta:
        ordering = ["pack", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["pack", "currency"], name="uniq_pack_currency"),
            models.CheckConstraint(condition=Q(unit_amount__gt=0), name="pack_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.pack.code}: {self.unit_amount / 100:.2f} {self.currency.upper()}"


class TopUp(models.Model):
    """One Checkout Session bought by a tenant; credited to the ledger at most once (by session id)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid (credited)"
        FAILED = "failed", "Payment failed"
        EXPIRED = "expired", "Expired"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="topups")
    pack = models.ForeignKey(TokenPack, null=True, blank=True, on_delete=models.PROTECT, related_name="topups")
    # Snapshots at purchase time: later pack edits never change what a session credits.
    tokens = models.BigIntegerField()
    currency = models.CharField(max_length=3, choices=Currency.choices)
    amount = models.PositiveIntegerField(help_text="In the currency's minor unit.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    stripe_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="")
    stripe_invoice_id = models.CharField(max_length=255, blank=True, default="")
    hosted_invoice_url = models.URLField(max_length=1000, blank=True, default="")
    invoice_pdf = models.URLField(max_length=1000, blank=True, default="")
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="topup"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failure_message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "top-up"

    def __str__(self) -> str:
        return f"top-up {self.pk} {self.tenant_id} {self.tokens} tokens ({self.status})"


class StripeEvent(models.Model):
    """Every verified Stripe event, stored once by its id and processed at most once."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed (Stripe retries)"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    api_version = models.CharField(max_length=64, blank=True, default="")
    livemode = models.BooleanField(default=False)
    object_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    stripe_created_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class StripeAnomaly(models.Model):
    """A signed Stripe object that Tingxie refused to credit (or could not read): finance looks at each one."""

    class Reason(models.TextChoices):
        UNKNOWN_SESSION = "unknown_session", "Session not created by Tingxie's checkout"
        TOPUP_MISMATCH = "topup_mismatch", "Metadata names another top-up"
        TENANT_MISMATCH = "tenant_mismatch", "Metadata names another tenant"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount differs from the recorded price"
        CURRENCY_MISMATCH = "currency_mismatch", "Currency differs from the recorded price"
        MALFORMED = "malformed", "Malformed Stripe object"

    # Empty for anomalies found by `stripe_reconcile` (no event); those are unique per object instead.
    event_id = models.CharField(max_length=255, blank=True, default="")
    event_type = models.CharField(max_length=100, blank=True, default="")
    object_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="stripe_anomalies"
    )
    topup = models.ForeignKey(TopUp, null=True, blank=True, on_delete=models.SET_NULL, related_name="anomalies")
    reason = models.CharField(max_length=32, choices=Reason.choices, db_index=True)
    detail = models.TextField()
    expected_amount = models.BigIntegerField(null=True, blank=True, help_text="In the currency's minor unit.")
    expected_currency = models.CharField(max_length=16, blank=True, default="")
    received_amount = models.BigIntegerField(null=True, blank=True, help_text="In the currency's minor unit.")
    received_currency = models.CharField(max_length=16, blank=True, default="")
    payload = models.JSONField(help_text="The raw event (or the session, for reconciliation).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "Stripe anomalies"
        constraints = [
            # Stripe retries an event until it gets a 2xx: one row per event and reason, however often.
            models.UniqueConstraint(
                fields=["event_id", "reason"], condition=~Q(event_id=""), name="uniq_stripe_anomaly_event_reason"
            ),
            models.UniqueConstraint(
                fields=["object_id", "reason"], condition=Q(event_id=""), name="uniq_stripe_anomaly_object_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} {self.event_id or self.object_id}"
