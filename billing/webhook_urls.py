"""Mounted at /webhooks/."""

from django.urls import path

from billing.webhooks import stripe_webhook

urlpatterns = [path("stripe/", stripe_webhook, name="stripe-webhook")]
