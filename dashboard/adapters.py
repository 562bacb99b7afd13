"""allauth adapter: a new signup gets its own tenant and becomes its owner."""

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            from dashboard.services import signup_tenant_create

            signup_tenant_create(user=user, company=form.cleaned_data.get("company", ""))
        return user
