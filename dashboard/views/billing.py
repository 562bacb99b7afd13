"""/app/billing/: balance, buy a token pack (Stripe Checkout), ledger, top-ups with invoices."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from billing.selectors import balance_get, ledger_list, token_packs_list, topup_list
from billing.stripe_api import payments_configured
from dashboard import permissions as p
from dashboard.views.base import tenant_view
from portal.downloads import HTML_DOCUMENT_CSP, safe_download
from portal.errors import DomainError, NotFound


@tenant_view(p.VIEW_BILLING)
def billing(request):
    from billing.statements import statement_periods

    checkout = request.GET.get("checkout")
    if checkout == "success":
        messages.success(request, _("Thank you! Your tokens are credited as soon as Stripe confirms the payment."))
    elif checkout == "canceled":
        messages.info(request, _("Checkout was canceled; nothing was charged."))
    ledger = Paginator(ledger_list(tenant=request.tenant).select_related("transcription", "actor"), 25).get_page(
        request.GET.get("page")
    )
    context = {
        "account": balance_get(tenant=request.tenant),
        "payments_enabled": payments_configured(),
        "packs": list(token_packs_list()),
        "ledger": ledger,
        "topups": topup_list(tenant=request.tenant)[:50],
        "statements": statement_periods(tenant=request.tenant)[:24],
    }
    return render(request, "dashboard/billing.html", context)


@require_POST
@tenant_view(p.VIEW_BILLING)
def billing_checkout(request):
    from billing.topups import checkout_session_create

    try:
        started = checkout_session_create(
            tenant=request.tenant,
            pack_code=request.POST.get("pack", ""),
            currency=request.POST.get("currency") or None,
            user=request.user,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:billing")
    url = getattr(started, "url", None) or (started.get("url") if isinstance(started, dict) else None)
    if not url:
        messages.error(request, _("The payment page could not be opened; please try again."))
        return redirect("dashboard:billing")
    return redirect(url)


@tenant_view(p.VIEW_BILLING)
def billing_statement(request, period: str):
    """A monthly statement (the billing app renders it), as HTML or, with ?format=pdf, as a PDF."""
    from billing.statements import statement_build, statement_html, statement_pdf

    try:
        statement = statement_build(tenant=request.tenant, period=period)
    except DomainError as exc:
        raise NotFound(exc.message) from None
    if request.GET.get("format") == "pdf":
        try:
            body = statement_pdf(statement=statement)
        except (ImportError, OSError):
            messages.error(request, _("PDF statements are not available on this server; use the HTML version."))
            return redirect("dashboard:billing")
        response = HttpResponse(body, content_type="application/pdf")
        return safe_download(response, filename=f"tingxie-statement-{period}.pdf")
    response = HttpResponse(statement_html(statement=statement), content_type="text/html; charset=utf-8")
    return safe_download(response, filename=f"tingxie-statement-{period}.html", inline=True, csp=HTML_DOCUMENT_CSP)
