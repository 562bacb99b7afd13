"""allauth adapter: a new signup gets its own tenant and becomes its owner, or joins the tenant it was invited to."""

from allauth.account.adapter import DefaultAccountAdapter

SESSION_INVITATION_KEY = "invitation_token"


def _company(request, form) -> str:
    # The field comes from dashboard.forms.SignupForm when ACCOUNT_FORMS points at it; the
    # dashboard's signup template also renders the input itself, so read the POST as a fallback.
    cleaned = getattr(form, "cleaned_data", {}) or {}
    value = cleaned.get("company") or (request.POST.get("company", "") if request is not None else "")
    return str(value).strip()[:200]


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            from dashboard.selectors import invitation_get_by_token
            from dashboard.services import signup_tenant_create
            from tenants.services import invitation_accept

            token = request.session.get(SESSION_INVITATION_KEY) if request is not None else None
            invitation = invitation_get_by_token(token=token) if token else None
            if (
                invitation is not None
                and invitation.is_pending
                and invitation.email.lower() == (user.email or "").lower()
            ):
                invitation_accept(invitation=invitation, user=user)
                request.session.pop(SESSION_INVITATION_KEY, None)
                if not _company(request, form):
                    return user
            signup_tenant_create(user=user, company=_company(request, form))
        return user
