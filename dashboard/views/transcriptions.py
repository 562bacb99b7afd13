"""/app/transcriptions/: list with live progress, upload, detail (progress, transcript, receipt), downloads."""

from __future__ import annotations

import os
import re

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard import permissions as p
from dashboard.forms import AUDIO_ACCEPT, AUDIO_EXTENSIONS, TranscriptionUploadForm
from dashboard.views.base import tenant_view
from portal.downloads import safe_download, safe_filename
from portal.errors import DomainError, InsufficientBalance
from transcription.audio import served_type
from transcription.models import Transcription
from transcription.selectors import hotword_list_list, transcription_get, transcription_list

STATUS_FILTERS = [s for s, _label in Transcription.Status.choices]


@tenant_view(p.TRANSCRIBE)
def transcription_list_view(request):
    status = request.GET.get("status") or None
    if status not in STATUS_FILTERS:
        status = None
    page = Paginator(transcription_list(tenant=request.tenant, status=status), 25).get_page(request.GET.get("page"))
    return render(
        request, "dashboard/transcriptions/list.html", {"page": page, "status": status, "statuses": STATUS_FILTERS}
    )


@tenant_view(p.TRANSCRIBE)
def transcription_row(request, transcription_id):
    """One table row; htmx swaps it in every second while the transcription is queued or running."""
    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    return render(request, "dashboard/transcriptions/_row.html", {"transcription": transcription})


@tenant_view(p.TRANSCRIBE)
def transcription_new(request):
    from transcription.services import transcription_create

    hotword_lists = list(hotword_list_list(tenant=request.tenant))
    errors: list[dict] = []
    if request.method == "POST":
        form = TranscriptionUploadForm(request.POST, request.FILES, hotword_lists=hotword_lists)
        if form.is_valid():
            created = []
            for uploaded in form.cleaned_data["files"]:
                try:
                    transcription = transcription_create(
                        tenant=request.tenant,
                        uploaded_file=uploaded,
                        options=form.options(),
                        source=Transcription.Source.DASHBOARD,
                        created_by=request.user,
                    )
                except InsufficientBalance as exc:
                    errors.append(
                        {"filename": uploaded.name, "code": exc.code, "message": exc.message, "extra": exc.extra}
                    )
                except DomainError as exc:
                    errors.append({"filename": uploaded.name, "code": exc.code, "message": exc.message})
                else:
                    created.append(transcription)
            if created and not errors:
                if len(created) == 1:
                    return redirect("dashboard:transcription_detail", transcription_id=created[0].pk)
                messages.success(request, _("%(n)d files uploaded; they are being transcribed.") % {"n": len(created)})
                return redirect("dashboard:transcriptions")
            for transcription in created:
                messages.success(request, _("%(name)s uploaded.") % {"name": transcription.filename})
    else:
        form = TranscriptionUploadForm(hotword_lists=hotword_lists)
    status = 200
    if errors:
        status = 402 if all(e["code"] == "insufficient_balance" for e in errors) else 400
    elif request.method == "POST":
        status = 400
    context = {
        "form": form,
        "errors": errors,
        "accept": AUDIO_ACCEPT,
        "extensions": AUDIO_EXTENSIONS,
        "hotword_lists": hotword_lists,
        "can_buy": p.role_has_perm(request.membership.role, p.VIEW_BILLING),
        "hold_rate": f"{settings.MAX_TOKENS_PER_SECOND:g}",
        "max_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
        "max_hours": f"{settings.MAX_AUDIO_SECONDS / 3600:g}",
    }
    return render(request, "dashboard/transcriptions/new.html", context, status=status)


@tenant_view(p.TRANSCRIBE)
def transcription_detail(request, transcription_id):
    from transcription.receipts import receipt_units

    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    units = receipt_units(transcription=transcription) if transcription.status == Transcription.Status.SUCCEEDED else []
    segments = transcription.segments if transcription.status == Transcription.Status.SUCCEEDED else []
    speakers = list(dict.fromkeys(seg["speaker"] for seg in segments if seg.get("speaker")))
    colour = {name: i % SPEAKER_COLOURS for i, name in enumerate(speakers)}
    context = {
        "transcription": transcription,
        "units": units,
        "requested_language": (transcription.options or {}).get("language", "auto"),
        "segments": [{**seg, "colour": colour.get(seg.get("speaker"), "")} for seg in segments],
        "speakers": [{"name": name, "colour": colour[name]} for name in speakers],
    }
    return render(request, "dashboard/transcriptions/detail.html", context)


SPEAKER_COLOURS = 8


@require_POST
@tenant_view(p.TRANSCRIBE)
def transcription_speakers_rename(request, transcription_id):
    """Rename the speakers of this transcript (S1 -> "Alice"); giving two labels one name merges them."""
    from transcription.services.speakers import transcription_speakers_rename as rename

    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    names = dict(zip(request.POST.getlist("label"), request.POST.getlist("name"), strict=False))
    try:
        rename(transcription=transcription, names=names)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Speakers renamed."))
    return redirect("dashboard:transcription_detail", transcription_id=transcription.pk)


@tenant_view(p.TRANSCRIBE)
def transcription_status(request, transcription_id):
    """The live progress block; once the transcription is final the whole page reloads to show the result."""
    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    response = render(request, "dashboard/transcriptions/_status.html", {"transcription": transcription})
    if transcription.is_final and request.headers.get("HX-Request"):
        response["HX-Refresh"] = "true"
    return response


@tenant_view(p.TRANSCRIBE)
def transcription_download(request, transcription_id, fmt: str):
    from transcription.formats import FORMATS, render_transcript

    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    if fmt not in FORMATS or transcription.status != Transcription.Status.SUCCEEDED:
        raise Http404
    body, content_type = render_transcript(transcription=transcription, fmt=fmt)
    stem = os.path.splitext(safe_filename(transcription.filename, fallback=""))[0][:80] or str(transcription.pk)
    return safe_download(HttpResponse(body, content_type=content_type), filename=f"{stem}.{fmt}")


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_RANGE_BYTES = 8 * 1024 * 1024  # the player asks again for the rest


@tenant_view(p.TRANSCRIBE)
def transcription_audio(request, transcription_id):
    """The transcription's audio for click-to-play segments; Range requests so the player can seek."""
    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    if not transcription.audio:
        raise Http404
    try:
        size = transcription.audio.size
        handle = transcription.audio.open("rb")
    except (FileNotFoundError, OSError):
        raise Http404 from None
    # The type comes from the stored bytes' container, never from the uploader's filename or Content-Type
    # (read through the storage API: works the same on a bucket).
    content_type, extension = served_type(handle)
    handle.seek(0)
    stem = os.path.splitext(safe_filename(transcription.filename, fallback=""))[0] or str(transcription.pk)
    match = _RANGE.match(request.headers.get("Range", ""))
    if match and (match.group(1) or match.group(2)):
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        else:
            start, end = max(0, size - int(match.group(2))), size - 1
        end = min(end, start + MAX_RANGE_BYTES - 1)
        if start >= size or start > end:
            handle.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return safe_download(response, filename=f"{stem}.{extension}", inline=True)
        handle.seek(start)
        body = handle.read(end - start + 1)
        handle.close()
        response = HttpResponse(body, status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        response = FileResponse(handle, content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    return safe_download(response, filename=f"{stem}.{extension}", inline=True)


@require_POST
@tenant_view(p.TRANSCRIBE)
def transcription_cancel(request, transcription_id):
    from transcription.services import transcription_cancel as cancel

    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    try:
        cancel(transcription=transcription)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The transcription was canceled; its held tokens were released."))
    return redirect("dashboard:transcription_detail", transcription_id=transcription.pk)


@require_POST
@tenant_view(p.TRANSCRIBE)
def transcription_delete(request, transcription_id):
    from transcription.services import transcription_delete as delete

    transcription = transcription_get(tenant=request.tenant, transcription_id=transcription_id)
    try:
        delete(transcription=transcription)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:transcription_detail", transcription_id=transcription.pk)
    messages.success(request, _("The transcription and its audio were deleted."))
    return redirect("dashboard:transcriptions")
