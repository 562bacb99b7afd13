from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.models import Membership, Tenant
from tenants.services import membership_set, tenant_create, user_get_or_create, user_password_set


class Command(BaseCommand):
    help = (
        "Create a tenant; with --owner-email, create that user if needed and make them owner "
        "(--password sets their password; otherwise this says how they set one)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--owner-email", default="")
        parser.add_argument("--password", default="", help="The owner's password (they can sign in at once).")

    def handle(self, *args, slug, name, owner_email, password, **options):
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"Tenant {slug!r} already exists.")
        if password and not owner_email:
            raise CommandError("--password needs --owner-email.")
        owner = user_get_or_create(email=owner_email) if owner_email else None
        if owner is not None and password:
            try:
                user_password_set(user=owner, password=password)
            except ValidationError as exc:
                raise CommandError(f"Password refused: {' '.join(exc.messages)}") from None
        tenant = tenant_create(slug=slug, name=name or slug, owner=owner)
        if owner is not None:
            membership_set(tenant=tenant, user=owner, role=Membership.Role.OWNER)
        self.stdout.write(
            f"Created tenant {tenant.slug} (id {tenant.pk})" + (f", owner {owner.email}" if owner else "")
        )
        if owner is not None:
            self.stdout.write(self._password_hint(owner, password_given=bool(password)))

    @staticmethod
    def _password_hint(owner, *, password_given: bool) -> str:
        site = settings.SITE_URL.rstrip("/")
        if password_given:
            return f"{owner.email} can sign in now at {site}/accounts/login/ with the password given."
        if owner.has_usable_password():
            return f"{owner.email} already has a password and can sign in at {site}/accounts/login/."
        return (
            f"{owner.email} has no password yet. They set one with 'Forgot password?' at "
            f"{site}/accounts/password/reset/ (the email goes out through EMAIL_BACKEND/EMAIL_HOST; check those "
            f"settings), or set one now: rerun with --password, or `python manage.py changepassword "
            f"{owner.get_username()}`."
        )
