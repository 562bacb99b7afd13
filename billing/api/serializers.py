"""Input validation and output shapes of the billing API."""

from rest_framework import serializers

from billing.models import Currency, LedgerEntry


class BalanceOutputSerializer(serializers.Serializer):
    available_tokens = serializers.IntegerField(source="available")
    held_tokens = serializers.IntegerField(source="held")


class LedgerFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices, required=False)


class LedgerEntryOutputSerializer(serializers.ModelSerializer):
    transcription_id = serializers.UUIDField(allow_null=True)
    stream_id = serializers.UUIDField(source="stream_session_id", allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = [
            "id", "kind", "available_delta", "held_delta", "available_after", "held_after",
            "transcription_id", "stream_id", "external_ref", "memo", "created_at",
        ]  # fmt: skip


class CheckoutInputSerializer(serializers.Serializer):
    pack = serializers.CharField(max_length=32)
    currency = serializers.ChoiceField(choices=Currency.choices, required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and isinstance(data.get("currency"), str):
            data = {**data, "currency": data["currency"].lower()}
        return super().to_internal_value(data)


class CheckoutOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The Stripe Checkout Session id.")
    url = serializers.URLField(help_text="Send the customer here to pay.")


class PackPriceOutputSerializer(serializers.Serializer):
    currency = serializers.CharField()
    unit_amount = serializers.IntegerField(help_text="Minor units (cents, fen).")


class PackOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    tokens = serializers.IntegerField()
    prices = PackPriceOutputSerializer(many=True, source="prices.all")


class StatementRefSerializer(serializers.Serializer):
    period = serializers.CharField()
    entries = serializers.IntegerField()
    topups = serializers.IntegerField()
    html_url = serializers.CharField()
    pdf_url = serializers.CharField()


class StripeInvoiceSerializer(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField()
    status = serializers.CharField()
    currency = serializers.CharField()
    amount_paid = serializers.IntegerField()
    created = serializers.IntegerField(allow_null=True)
    hosted_invoice_url = serializers.CharField()
    invoice_pdf = serializers.CharField()


class InvoicesOutputSerializer(serializers.Serializer):
    statements = StatementRefSerializer(many=True)
    invoices = StripeInvoiceSerializer(many=True)
    invoices_complete = serializers.BooleanField(
        help_text="False when Stripe could not be reached; stored links shown."
    )
