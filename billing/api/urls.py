"""Included under /api/v1/."""

from django.urls import path, re_path

from billing.api import views

urlpatterns = [
    path("balance", views.BalanceGetApi.as_view(), name="billing-balance"),
    path("ledger", views.LedgerListApi.as_view(), name="billing-ledger"),
    path("billing/packs", views.PackListApi.as_view(), name="billing-packs"),
    path("billing/checkout", views.CheckoutCreateApi.as_view(), name="billing-checkout"),
    path("billing/invoices", views.InvoiceListApi.as_view(), name="billing-invoices"),
    re_path(
        r"^billing/statements/(?P<period>[0-9]{4}-[0-9]{2})$", views.StatementGetApi.as_view(), name="billing-statement"
    ),
]
