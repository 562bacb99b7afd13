"""Billing API: balance, ledger, checkout, invoices and monthly statements; one view per operation."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from billing import selectors, statements, topups
from billing.api.serializers import (
    BalanceOutputSerializer,
    CheckoutInputSerializer,
    CheckoutOutputSerializer,
    InvoicesOutputSerializer,
    LedgerEntryOutputSerializer,
    LedgerFilterSerializer,
    PackOutputSerializer,
)
from portal.downloads import HTML_DOCUMENT_CSP, safe_download
from portal.errors import InvalidRequest
from portal.openapi import paginated
from portal.pagination import PAGINATION_PARAMETERS, Pagination
from tenants.api.base import TenantApi


class BalanceGetApi(TenantApi):
    @extend_schema(responses={200: BalanceOutputSerializer}, summary="Token balance", tags=["billing"])
    def get(self, request):
        return Response(BalanceOutputSerializer(selectors.balance_get(tenant=self.tenant)).data)


class LedgerListApi(TenantApi):
    @extend_schema(
        parameters=[LedgerFilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated(LedgerEntryOutputSerializer)},
        summary="Ledger entries, newest first",
        tags=["billing"],
    )
    def get(self, request):
        filters = LedgerFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = selectors.ledger_list(tenant=self.tenant, kind=filters.validated_data.get("kind"))
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(LedgerEntryOutputSerializer(page, many=True).data)


class PackListApi(TenantApi):
    @extend_schema(responses={200: PackOutputSerializer(many=True)}, summary="Token packs for sale", tags=["billing"])
    def get(self, request):
        return Response(PackOutputSerializer(selectors.token_packs_list(), many=True).data)


class CheckoutCreateApi(TenantApi):
    @extend_schema(
        request=CheckoutInputSerializer,
        responses={201: CheckoutOutputSerializer},
        summary="Buy a token pack (Stripe Checkout)",
        description="Returns a Stripe Checkout Session; redirect the customer to `url`. Tokens are credited when "
        "Stripe reports the payment. CNY sessions offer Alipay / WeChat Pay where the Stripe account enables them. "
        "A server without a payment provider answers 503 `payments_unavailable` and records nothing.",
        tags=["billing"],
    )
    def post(self, request):
        data = CheckoutInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        started = topups.checkout_session_create(
            tenant=self.tenant, pack_code=data.validated_data["pack"], currency=data.validated_data.get("currency")
        )
        body = CheckoutOutputSerializer({"id": started.session_id, "url": started.url}).data
        return Response(body, status=status.HTTP_201_CREATED)


class InvoiceListApi(TenantApi):
    @extend_schema(
        responses={200: InvoicesOutputSerializer}, summary="Monthly statements and Stripe invoices", tags=["billing"]
    )
    def get(self, request):
        periods = statements.statement_periods(tenant=self.tenant)
        for row in periods:
            url = request.build_absolute_uri(reverse("billing-statement", kwargs={"period": row["period"]}))
            row["html_url"], row["pdf_url"] = url, f"{url}?format=pdf"
        invoices, complete = selectors.stripe_invoices_list(tenant=self.tenant)
        body = {"statements": periods, "invoices": invoices, "invoices_complete": complete}
        return Response(InvoicesOutputSerializer(body).data)


class StatementGetApi(TenantApi):
    def perform_content_negotiation(self, request, force=False):
        # `?format=` picks html or pdf below; errors still leave as JSON.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["html", "pdf"], description="Default html.")],
        responses={(200, "text/html"): OpenApiTypes.STR, (200, "application/pdf"): OpenApiTypes.BINARY},
        summary="Monthly statement",
        tags=["billing"],
    )
    def get(self, request, period: str):
        fmt = request.query_params.get("format", "html")
        if fmt not in ("html", "pdf"):
            raise InvalidRequest("format must be html or pdf.")
        statement = statements.statement_build(tenant=self.tenant, period=period)
        if fmt == "pdf":
            response = HttpResponse(statements.statement_pdf(statement=statement), content_type="application/pdf")
            return safe_download(response, filename=f"tingxie-{self.tenant.slug}-{period}.pdf")
        response = HttpResponse(statements.statement_html(statement=statement), content_type="text/html; charset=utf-8")
        return safe_download(
            response, filename=f"tingxie-{self.tenant.slug}-{period}.html", inline=True, csp=HTML_DOCUMENT_CSP
        )
