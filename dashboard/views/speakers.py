"""/app/speakers/: the workspace's enrolled speakers (voiceprints): enroll by upload or microphone, rename, delete."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard import permissions as p
from dashboard.forms import SpeakerEnrollForm, SpeakerRenameForm
from dashboard.views.base import tenant_view
from portal.errors import DomainError
from transcription.selectors import speaker_get, speaker_list


@tenant_view(p.MANAGE_HOTWORDS)
def speaker_list_view(request):
    from transcription.services.speakers import speaker_create

    form = SpeakerEnrollForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            speaker_create(
                tenant=request.tenant, name=form.cleaned_data["name"], uploaded_files=form.cleaned_data["files"]
            )
        except DomainError as exc:
            form.add_error("files", exc.message)
        else:
            messages.success(request, _("Speaker enrolled; the voiceprint is computed in a few seconds."))
            return redirect("dashboard:speakers")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "speakers": speaker_list(tenant=request.tenant)}
    return render(request, "dashboard/speakers.html", context, status=status)


@require_POST
@tenant_view(p.MANAGE_HOTWORDS)
def speaker_rename_view(request, speaker_id):
    from transcription.services.speakers import speaker_rename

    speaker = speaker_get(tenant=request.tenant, speaker_id=speaker_id)
    form = SpeakerRenameForm(request.POST)
    if form.is_valid():
        speaker_rename(speaker=speaker, name=form.cleaned_data["name"])
        messages.success(request, _("Speaker renamed."))
    else:
        messages.error(request, _("Give the speaker a name of 1 to 100 characters."))
    return redirect("dashboard:speakers")


@require_POST
@tenant_view(p.MANAGE_HOTWORDS)
def speaker_delete_view(request, speaker_id):
    from transcription.services.speakers import speaker_delete

    speaker_delete(speaker=speaker_get(tenant=request.tenant, speaker_id=speaker_id))
    messages.success(request, _("Speaker and voiceprint deleted."))
    return redirect("dashboard:speakers")
