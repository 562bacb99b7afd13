"""/app/live/: talk into the microphone and watch partials and finals (the stream worker's FunASR protocol),
and the tenant's live sessions."""

from django.conf import settings
from django.shortcuts import render

from dashboard import permissions as p
from dashboard.views.base import tenant_view
from streaming.auth import stream_ticket_create
from streaming.selectors import stream_list


def stream_url(request) -> str:
    """Where browsers reach the stream worker: STREAM_PUBLIC_URL, else this host on STREAM_PORT."""
    if settings.STREAM_PUBLIC_URL:
        return settings.STREAM_PUBLIC_URL
    host = request.get_host().rsplit(":", 1)[0] if not request.get_host().endswith("]") else request.get_host()
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{host}:{settings.STREAM_PORT}"


@tenant_view(p.TRANSCRIBE)
def live(request):
    context = {
        "stream_url": stream_url(request),
        "ticket": stream_ticket_create(tenant=request.tenant, user=request.user),
        "sessions": stream_list(tenant=request.tenant).select_related("started_by")[:50],
    }
    response = render(request, "dashboard/live.html", context)
    response["Cache-Control"] = "no-store"  # the ticket is a credential
    return response
