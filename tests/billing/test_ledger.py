"""The ledger is append-only, balances equal ledger sums, manual entries need a memo."""

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from billing.models import AppendOnlyError, BalanceAccount, LedgerEntry
from billing.selectors import ledger_sums
from billing.services import tokens_grant
from portal.errors import InvalidRequest

pytestmark = pytest.mark.django_db


def test_grant_writes_entry_and_balance(tenant):
    entry = tokens_grant(tenant=tenant, tokens=500, memo="welcome")
    account = BalanceAccount.objects.get(tenant=tenant)
    assert account.available == 500 and entry.available_after == 500 and entry.kind == "grant"
    assert ledger_sums(tenant=tenant) == (500, 0)


@pytest.mark.parametrize(
    ("tokens", "memo", "kind"), [(10, "", "grant"), (10, "   ", "grant"), (-5, "x", "grant"), (0, "x", "adjustment")]
)
def test_manual_entries_are_validated(tenant, tokens, memo, kind):
    with pytest.raises(InvalidRequest):
        tokens_grant(tenant=tenant, tokens=tokens, memo=memo, kind=kind)
    assert LedgerEntry.objects.count() == 0


def test_negative_adjustment_allowed_with_memo(tenant):
    tokens_grant(tenant=tenant, tokens=100, memo="grant")
    tokens_grant(tenant=tenant, tokens=-30, memo="correction", kind="adjustment")
    assert BalanceAccount.objects.get(tenant=tenant).available == 70
    assert ledger_sums(tenant=tenant) == (70, 0)


def test_entries_cannot_be_changed_or_deleted_through_the_orm(tenant):
    entry = tokens_grant(tenant=tenant, tokens=5, memo="m")
    entry.memo = "changed"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.filter(pk=entry.pk).update(memo="x")
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.filter(pk=entry.pk).delete()


@pytest.mark.parametrize("sql", ["UPDATE billing_ledgerentry SET memo = 'x'", "DELETE FROM billing_ledgerentry"])
def test_database_refuses_update_and_delete(tenant, sql):
    tokens_grant(tenant=tenant, tokens=5, memo="m")
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert LedgerEntry.objects.get().memo == "m"


def test_grant_tokens_command(tenant, capsys):
    call_command("grant_tokens", tenant.slug, "250", "--memo", "pilot")
    assert BalanceAccount.objects.get(tenant=tenant).available == 250
    assert LedgerEntry.objects.get().memo == "pilot"


def test_create_tenant_and_key_commands(db, capsys):
    from tenants.models import ApiKey, Membership, Tenant

    call_command("create_tenant", "initech", "--name", "Initech", "--owner-email", "boss@initech.test")
    tenant = Tenant.objects.get(slug="initech")
    membership = Membership.objects.get(tenant=tenant)
    assert membership.role == "owner" and not membership.user.has_usable_password()
    capsys.readouterr()
    call_command("create_api_key", "initech", "--name", "ci")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiKey.objects.get_from_key(raw).tenant == tenant
