from django.core.management.base import BaseCommand, CommandError

from tenants.models import Membership, Tenant
from tenants.services import membership_set, tenant_create, user_get_or_create


class Command(BaseCommand):
    help = "Create a tenant; with --owner-email, create that user if needed and make them owner."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--owner-email", default="")

    def handle(self, *args, slug, name, owner_email, **options):
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"Tenant {slug!r} already exists.")
        owner = user_get_or_create(email=owner_email) if owner_email else None
        tenant = tenant_create(slug=slug, name=name or slug, owner=owner)
        if owner is not None:
            membership_set(tenant=tenant, user=owner, role=Membership.Role.OWNER)
        self.stdout.write(
            f"Created tenant {tenant.slug} (id {tenant.pk})" + (f", owner {owner.email}" if owner else "")
        )
