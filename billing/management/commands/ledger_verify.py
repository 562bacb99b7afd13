"""Check that the books balance: exits non-zero (and lists what drifted) when they do not."""

from django.core.management.base import BaseCommand, CommandError

from billing.verify import ledger_verify

SHOWN = 50


class Command(BaseCommand):
    help = (
        "Verify the ledger: every balance equals its ledger sums, at most one debit per transcription and exactly "
        "its billed tokens, one credit per Stripe session. Exit status 1 on any drift (run it after a restore)."
    )

    def handle(self, *args, **options):
        report = ledger_verify()
        for problem in report.problems[:SHOWN]:
            self.stderr.write(problem)
        if len(report.problems) > SHOWN:
            self.stderr.write(f"... and {len(report.problems) - SHOWN} more")
        summary = f"{report.accounts} accounts, {report.entries} ledger entries; checked {', '.join(report.checks)}"
        if report.problems:
            raise CommandError(f"Ledger drift: {len(report.problems)} problem(s) ({summary}).")
        self.stdout.write(f"Ledger OK: {summary}.")
