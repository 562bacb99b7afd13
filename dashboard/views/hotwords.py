"""/app/hotwords/: saved hotword lists (create, edit, delete)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard import permissions as p
from dashboard.forms import HotwordListForm
from dashboard.services import hotword_list_delete
from dashboard.views.base import tenant_view
from portal.errors import DomainError
from transcription.selectors import hotword_list_get, hotword_list_list


def _save(request, form, hotword_list=None) -> bool:
    from transcription.services import hotword_list_save

    name = form.cleaned_data["name"].strip()
    clash = hotword_list_list(tenant=request.tenant).filter(name=name)
    if hotword_list is not None:
        clash = clash.exclude(pk=hotword_list.pk)
    if clash.exists():
        form.add_error("name", _("A list with this name already exists."))
        return False
    try:
        hotword_list_save(tenant=request.tenant, name=name, words=form.cleaned_data["words"], hotword_list=hotword_list)
    except DomainError as exc:
        form.add_error("words", exc.message)
        return False
    return True


@tenant_view(p.MANAGE_HOTWORDS)
def hotword_lists(request):
    form = HotwordListForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and _save(request, form):
        messages.success(request, _("Hotword list saved."))
        return redirect("dashboard:hotwords")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "lists": hotword_list_list(tenant=request.tenant)}
    return render(request, "dashboard/hotwords/list.html", context, status=status)


@tenant_view(p.MANAGE_HOTWORDS)
def hotword_list_edit(request, list_id):
    hotword_list = hotword_list_get(tenant=request.tenant, list_id=list_id)
    initial = {"name": hotword_list.name, "words": hotword_list.words}
    form = HotwordListForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid() and _save(request, form, hotword_list):
        messages.success(request, _("Hotword list saved."))
        return redirect("dashboard:hotwords")
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/hotwords/edit.html", {"form": form, "hotword_list": hotword_list}, status=status)


@require_POST
@tenant_view(p.MANAGE_HOTWORDS)
def hotword_list_remove(request, list_id):
    hotword_list = hotword_list_get(tenant=request.tenant, list_id=list_id)
    hotword_list_delete(hotword_list=hotword_list)
    messages.success(request, _("Hotword list deleted."))
    return redirect("dashboard:hotwords")
