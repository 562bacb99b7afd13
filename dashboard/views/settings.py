"""/app/settings/: workspace settings for owners and admins (how long audio and transcripts are kept)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from dashboard import permissions as p
from dashboard.forms import RetentionForm
from dashboard.views.base import tenant_view
from portal.errors import DomainError
from tenants.services import tenant_retention_set


@tenant_view(p.MANAGE_SETTINGS)
def workspace_settings(request):
    tenant = request.tenant
    initial = {
        "audio_retention_days": tenant.audio_retention_days,
        "transcript_retention_days": tenant.transcript_retention_days,
    }
    form = RetentionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            tenant_retention_set(
                tenant=tenant,
                audio_days=form.cleaned_data["audio_retention_days"],
                transcript_days=form.cleaned_data["transcript_retention_days"],
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Settings saved. They apply from the next daily clean-up."))
            return redirect("dashboard:settings")
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/settings.html", {"form": form}, status=status)
