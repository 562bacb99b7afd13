"""Dashboard forms. Views hand cleaned data to services; forms only parse and validate input."""

from __future__ import annotations

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tenants.models import Membership

LANGUAGE_CHOICES = [
    ("auto", _("Detect automatically")),
    ("zh", _("Chinese (Mandarin)")),
    ("en", _("English")),
    ("yue", _("Cantonese")),
    ("ja", _("Japanese")),
    ("ko", _("Korean")),
]
AUDIO_EXTENSIONS = ("wav", "mp3", "m4a", "flac", "ogg", "opus", "webm", "mp4")
AUDIO_ACCEPT = ",".join(f".{e}" for e in AUDIO_EXTENSIONS) + ",audio/*"
MAX_FILES_PER_UPLOAD = 20


class SignupForm(AllauthSignupForm):
    """allauth's signup plus the company name that becomes the new tenant (ACCOUNT_FORMS["signup"])."""

    company = forms.CharField(
        label=_("Company or team name"),
        max_length=200,
        required=False,
        help_text=_("Your workspace is created with this name; you become its owner."),
        widget=forms.TextInput(attrs={"autocomplete": "organization", "placeholder": _("Company or team name")}),
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": AUDIO_ACCEPT}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


class TranscriptionUploadForm(forms.Form):
    files = MultipleFileField(
        label=_("Audio files"),
        help_text=_("You can pick several files at once."),
    )
    language = forms.ChoiceField(label=_("Language"), choices=LANGUAGE_CHOICES, initial="auto")
    itn = forms.BooleanField(
        label=_("Inverse text normalization (write numbers, dates and money as digits)"), required=False, initial=True
    )
    hotword_list = forms.ChoiceField(label=_("Saved hotword list"), required=False)
    hotwords = forms.CharField(
        label=_("Hotwords"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("One word or phrase per line")}),
        help_text=_("Names and domain terms the model should prefer, one per line."),
    )
    diarize = forms.BooleanField(label=_("Label speakers (who spoke when)"), required=False)
    speakers = forms.IntegerField(
        label=_("Number of speakers"),
        required=False,
        min_value=1,
        max_value=20,
        help_text=_("Leave empty to detect it."),
    )

    def __init__(self, *args, hotword_lists=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.hotword_lists = {str(h.pk): h for h in hotword_lists}
        self.fields["hotword_list"].choices = [("", _("None"))] + [(str(h.pk), h.name) for h in hotword_lists]

    def clean_files(self):
        files = self.cleaned_data["files"]
        if not files:
            raise forms.ValidationError(_("Choose at least one audio file."))
        if len(files) > MAX_FILES_PER_UPLOAD:
            raise forms.ValidationError(_("Upload at most %(n)d files at once.") % {"n": MAX_FILES_PER_UPLOAD})
        limit = settings.MAX_UPLOAD_BYTES
        for f in files:
            if f.size > limit:
                raise forms.ValidationError(
                    _("%(name)s is %(size)s MB; the limit is %(limit)s MB per file.")
                    % {"name": f.name, "size": f.size // (1024 * 1024), "limit": limit // (1024 * 1024)}
                )
        return files

    def options(self) -> dict:
        """Options for transcription_create, which merges the chosen list with the typed words."""
        chosen = self.hotword_lists.get(self.cleaned_data.get("hotword_list") or "")
        return {
            "language": self.cleaned_data["language"],
            "itn": bool(self.cleaned_data.get("itn")),
            "vad": True,
            "hotwords": self.cleaned_data.get("hotwords", ""),
            "hotword_list": chosen.pk if chosen is not None else None,
            "diarize": bool(self.cleaned_data.get("diarize")),
            "speakers": self.cleaned_data.get("speakers") if self.cleaned_data.get("diarize") else None,
        }


class SpeakerEnrollForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    files = MultipleFileField(
        label=_("Voice samples"),
        help_text=_("One to five recordings of this person alone, each up to a minute."),
    )


class SpeakerRenameForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(label=_("Key name"), max_length=50, help_text=_("For example the program that uses it."))


class HotwordListForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    words = forms.CharField(
        label=_("Words and phrases"),
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text=_("One per line."),
    )


class InvitationForm(forms.Form):
    email = forms.EmailField(label=_("Email address"), widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        labels = dict(Membership.Role.choices)
        self.fields["role"].choices = [(r, labels[r]) for r in roles]
        if Membership.Role.MEMBER in roles:
            self.fields["role"].initial = Membership.Role.MEMBER


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        labels = dict(Membership.Role.choices)
        self.fields["role"].choices = [(r, labels[r]) for r in roles]


class WorkspaceCreateForm(forms.Form):
    company = forms.CharField(label=_("Company or team name"), max_length=200)


class RetentionForm(forms.Form):
    audio_retention_days = forms.IntegerField(
        label=_("Delete audio after (days)"), required=False, min_value=1, max_value=36_500,
        help_text=_("Counted from when the transcription finished. Empty: keep the audio until it is deleted."),
    )  # fmt: skip
    transcript_retention_days = forms.IntegerField(
        label=_("Delete transcripts after (days)"), required=False, min_value=1, max_value=36_500,
        help_text=_("Empty: keep transcripts until they are deleted. Token counts and the ledger always stay."),
    )  # fmt: skip
