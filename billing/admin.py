"""The finance desk: balances (read-only; grants and adjustments with a memo), the ledger (read-only), packs,
top-ups, Stripe events, Stripe anomalies (read-only) and a Stripe-vs-ledger reconciliation page."""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from billing import selectors, topups
from billing.models import BalanceAccount, LedgerEntry, StripeAnomaly, StripeEvent, TokenPack, TokenPackPrice, TopUp
from billing.services import tokens_grant
from portal.downloads import safe_download
from portal.errors import DomainError

ADJUST_PERM = "billing.adjust_balance"
RECONCILE_PERM = "billing.reconcile_topups"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by whoever has the view permission; nobody adds, changes or deletes here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Balances ------------------------------------------------------------------------------


class BalanceActionForm(forms.Form):
    tokens = forms.IntegerField(help_text="Tokens per selected account.")
    memo = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text="Required: why.")

    def __init__(self, *args, positive: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.positive = positive
        if positive:
            self.fields["tokens"].min_value = 1
            self.fields["tokens"].widget.attrs["min"] = 1

    def clean_tokens(self):
        tokens = self.cleaned_data["tokens"]
        if self.positive and tokens <= 0:
            raise forms.ValidationError("Must be a positive number of tokens.")
        if tokens == 0:
            raise forms.ValidationError("0 tokens changes nothing.")
        return tokens

    def clean_memo(self):
        memo = self.cleaned_data["memo"].strip()
        if not memo:
            raise forms.ValidationError("A memo is required.")
        return memo


# (action name, title, ledger kind, positive only, memo prefix)
BALANCE_ACTIONS = {
    "grant_tokens": ("Grant tokens", LedgerEntry.Kind.GRANT, True, ""),
    "adjust_tokens": ("Adjust tokens (+/-)", LedgerEntry.Kind.ADJUSTMENT, False, ""),
    "refund_as_tokens": ("Refund as tokens", LedgerEntry.Kind.ADJUSTMENT, True, "Refund as tokens: "),
}


@admin.register(BalanceAccount)
class BalanceAccountAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "available", "held", "updated_at"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug", "tenant__name"]
    ordering = ["tenant__slug"]
    actions = ["grant_tokens", "adjust_tokens", "refund_as_tokens"]

    def has_adjust_permission(self, request) -> bool:
        return request.user.has_perm(ADJUST_PERM)

    def _balance_action(self, request, queryset, action: str):
        title, kind, positive, prefix = BALANCE_ACTIONS[action]
        form = BalanceActionForm(request.POST if "apply" in request.POST else None, positive=positive)
        if "apply" in request.POST and form.is_valid():
            done = 0
            for account in queryset.select_related("tenant"):
                try:
                    tokens_grant(
                        tenant=account.tenant,
                        tokens=form.cleaned_data["tokens"],
                        memo=prefix + form.cleaned_data["memo"],
                        kind=kind,
                        actor=request.user,
                        actor_label=request.user.get_username()[:64],
                    )
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"{account.tenant.slug}: {exc.message}", messages.ERROR)
            self.message_user(request, f"{title}: {form.cleaned_data['tokens']:+,} tokens for {done} account(s).")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "action": action,
            "form": form,
            "accounts": queryset.select_related("tenant"),
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "billing/admin_balance_action.html", context)

    @admin.action(description="Grant tokens (with a memo)", permissions=["adjust"])
    def grant_tokens(self, request, queryset):
        return self._balance_action(request, queryset, "grant_tokens")

    @admin.action(description="Adjust tokens (with a memo)", permissions=["adjust"])
    def adjust_tokens(self, request, queryset):
        return self._balance_action(request, queryset, "adjust_tokens")

    @admin.action(description="Refund as tokens (with a memo)", permissions=["adjust"])
    def refund_as_tokens(self, request, queryset):
        return self._balance_action(request, queryset, "refund_as_tokens")


# --- Ledger --------------------------------------------------------------------------------

LEDGER_CSV_FIELDS = [
    "id", "created_at", "tenant", "kind", "available_delta", "held_delta", "available_after", "held_after",
    "transcription_id", "external_ref", "actor", "actor_label", "memo",
]  # fmt: skip


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "tenant",
        "kind",
        "available_delta",
        "held_delta",
        "available_after",
        "held_after",
        "job",
        "external_ref",
        "actor",
        "memo",
    ]
    list_filter = ["kind", "tenant", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["tenant", "actor"]
    search_fields = ["external_ref", "memo", "tenant__slug"]
    date_hierarchy = "created_at"
    actions = ["export_csv"]
    show_full_result_count = False

    @admin.display(description="Job", ordering="transcription_id")
    def job(self, entry):
        """The transcription's admin page (billing refers to jobs by id only; the URL name is the admin's)."""
        if not entry.transcription_id:
            return ""
        url = reverse("admin:transcription_transcription_change", args=[entry.transcription_id])
        return format_html('<a href="{}">{}</a>', url, str(entry.transcription_id)[:8])

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = safe_download(HttpResponse(content_type="text/csv; charset=utf-8"), filename="ledger.csv")
        writer = csv.writer(response)
        writer.writerow(LEDGER_CSV_FIELDS)
        for e in queryset.select_related("tenant", "actor").order_by("id"):
            writer.writerow(
                [
                    e.pk,
                    e.created_at.isoformat(),
                    e.tenant.slug,
                    e.kind,
                    e.available_delta,
                    e.held_delta,
                    e.available_after,
                    e.held_after,
                    e.transcription_id or "",
                    e.external_ref,
                    e.actor.get_username() if e.actor else "",
                    e.actor_label,
                    e.memo,
                ]  # fmt: skip
            )
        return response


# --- Packs, top-ups, events ------------------------------------------------------------------


class TokenPackPriceInline(admin.TabularInline):
    model = TokenPackPrice
    extra = 0


@admin.register(TokenPack)
class TokenPackAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "tokens", "active", "sort_order", "updated_at"]
    list_editable = ["active", "sort_order"]
    inlines = [TokenPackPriceInline]

    def has_delete_permission(self, request, obj=None):
        # Top-ups refer to packs; retire a pack by unticking `active`.
        return False


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "created_at", "tenant", "pack", "tokens", "amount_display", "status",
        "stripe_session_id", "stripe_payment_intent_id", "stripe_invoice_id", "paid_at",
    ]  # fmt: skip
    list_filter = ["status", "currency", "pack"]
    list_select_related = ["tenant", "pack"]
    search_fields = ["stripe_session_id", "stripe_payment_intent_id", "stripe_invoice_id", "tenant__slug"]
    date_hierarchy = "created_at"

    @admin.display(description="Amount")
    def amount_display(self, obj: TopUp) -> str:
        return f"{obj.amount / 100:,.2f} {obj.currency.upper()}"

    def get_urls(self):
        return [
            path("reconcile/", self.admin_site.admin_view(self.reconcile_view), name="billing_topup_reconcile"),
            *super().get_urls(),
        ]

    def reconcile_view(self, request):
        if not request.user.has_perm(RECONCILE_PERM):
            raise PermissionDenied
        try:
            days = max(1, min(int(request.GET.get("days", 7)), 90))
        except ValueError:
            days = 7
        if request.method == "POST":
            try:
                result = topups.topups_reconcile(days=days)
                self.message_user(
                    request,
                    f"Checked {result.checked} sessions; credited {len(result.credited)}: {', '.join(result.credited) or '-'}.",
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(f"{reverse('admin:billing_topup_reconcile')}?days={days}")
        error = ""
        report = None
        try:
            report = selectors.topups_reconciliation(days=days)
        except DomainError as exc:
            error = exc.message
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconcile Stripe top-ups",
            "opts": self.model._meta,
            "days": days,
            "report": report,
            "error": error,
        }
        return TemplateResponse(request, "billing/admin_reconcile.html", context)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "status", "attempts", "object_id", "api_version", "received_at", "processed_at"]
    list_filter = ["status", "type", "livemode"]
    search_fields = ["event_id", "object_id"]
    date_hierarchy = "received_at"


def _money(amount: int | None, currency: str) -> str:
    if amount is None and not currency:
        return "-"
    shown = "?" if amount is None else f"{amount / 100:,.2f}"
    return f"{shown} {currency.upper() or '?'}"


@admin.register(StripeAnomaly)
class StripeAnomalyAdmin(ReadOnlyAdmin):
    """Signed Stripe objects that were not credited (or reversed) as they stood: each needs a look from finance."""

    list_display = [
        "created_at", "reason", "event_type", "event_id", "object_id", "tenant", "topup",
        "expected_display", "received_display", "detail",
    ]  # fmt: skip
    list_filter = ["reason", "event_type", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["tenant", "topup"]
    search_fields = ["event_id", "object_id", "tenant__slug", "detail"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="Expected")
    def expected_display(self, obj: StripeAnomaly) -> str:
        return _money(obj.expected_amount, obj.expected_currency)

    @admin.display(description="Received")
    def received_display(self, obj: StripeAnomaly) -> str:
        return _money(obj.received_amount, obj.received_currency)
