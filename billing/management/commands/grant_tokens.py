from django.core.management.base import BaseCommand, CommandError

from billing.services import tokens_grant
from portal.errors import DomainError
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Grant tokens to a tenant (a ledger entry with the memo)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("tokens", type=int)
        parser.add_argument("--memo", required=True)

    def handle(self, *args, slug, tokens, memo, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        try:
            entry = tokens_grant(tenant=tenant, tokens=tokens, memo=memo, actor_label="cli")
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Granted {tokens} tokens to {slug}; available now {entry.available_after}.")
