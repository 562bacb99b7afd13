"""Credit paid Stripe Checkout Sessions whose webhook never arrived (safe to run any number of times)."""

from django.core.management.base import BaseCommand, CommandError

from billing.topups import topups_reconcile
from portal.errors import DomainError


class Command(BaseCommand):
    help = "List the last N days of paid Checkout Sessions at Stripe and credit any the ledger is missing."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=3, help="How far back to look (default 3).")

    def handle(self, *args, days: int, **options):
        if days <= 0:
            raise CommandError("--days must be positive.")
        try:
            result = topups_reconcile(days=days)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        for session_id in result.credited:
            self.stdout.write(f"credited {session_id}")
        for session_id in result.skipped:
            self.stdout.write(f"skipped {session_id} (not a Tingxie top-up)")
        self.stdout.write(f"Checked {result.checked} completed sessions; credited {len(result.credited)}.")
