from django.core.management.base import BaseCommand, CommandError

from tenants.models import Tenant
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant; the raw key is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, slug, name, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}. Create it with: manage.py create_tenant {slug}")
        key, raw = api_key_create(tenant=tenant, name=name)
        self.stdout.write(f"Created API key {key.prefix}… ({name}) for {tenant.slug}. It is shown only once:")
        self.stdout.write(raw)
