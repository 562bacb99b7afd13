"""Money writes as one PostgreSQL statement (billing.balance_sql) against the ORM path they replace there.

The ORM path stays for SQLite; `billing.services.SINGLE_STATEMENT = False` forces it on PostgreSQL, so both run
on the same database here and must leave the same ledger rows and balances, and the same 402s.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.models import BalanceAccount, LedgerEntry
from billing.services import (
    external_entry_write,
    hold_extend,
    hold_place,
    hold_release,
    hold_settle,
    tokens_grant,
)
from portal import metrics
from portal.errors import InsufficientBalance
from tests.billing.conftest import assert_ledger_invariant, postgres_required
from tests.billing.test_concurrency import run_parallel
from tests.factories import TenantFactory, UserFactory
from transcription.models import Transcription

ROW = (
    "kind", "available_delta", "held_delta", "available_after", "held_after", "actor_id",
    "actor_label", "memo", "stream_session_id",
)  # fmt: skip


@pytest.fixture
def single_statement(monkeypatch):
    """use(True) for the one-statement path, use(False) for the ORM path (both on PostgreSQL)."""
    postgres_required()

    def use(on: bool) -> None:
        monkeypatch.setattr(services, "SINGLE_STATEMENT", on)

    return use


def _jobs(tenant, n: int) -> list[Transcription]:
    return [Transcription.objects.create(tenant=tenant, sha256=f"{i:064x}", held_tokens=0) for i in range(n)]


def _script(tenant, actor) -> dict:
    """Every kind of money write, in an order that touches each branch; returns what the callers get back."""
    jobs = _jobs(tenant, 4)
    out = {"grant": tokens_grant(tenant=tenant, tokens=100, memo="start", actor=actor, actor_label="finance")}
    out["hold0"] = hold_place(tenant_id=tenant.pk, reference=jobs[0].pk, tokens=30)
    out["hold1"] = hold_place(tenant_id=tenant.pk, reference=jobs[1].pk, tokens=20)
    out["hold2"] = hold_place(tenant_id=tenant.pk, reference=jobs[2].pk, tokens=10)
    out["extend0"] = hold_extend(tenant_id=tenant.pk, reference=jobs[0].pk, tokens=10)
    out["settle0"] = hold_settle(tenant_id=tenant.pk, reference=jobs[0].pk, held=40, tokens=25)  # debit + release
    out["release1"] = hold_release(tenant_id=tenant.pk, reference=jobs[1].pk, held=20)
    out["release1_again"] = hold_release(tenant_id=tenant.pk, reference=jobs[1].pk, held=20)
    out["settle2"] = hold_settle(tenant_id=tenant.pk, reference=jobs[2].pk, held=10, tokens=50)  # debit only
    out["settle3_nothing"] = hold_settle(tenant_id=tenant.pk, reference=jobs[3].pk, held=0, tokens=5)
    hold_place(tenant_id=tenant.pk, reference=jobs[3].pk, tokens=5)
    out["settle3"] = hold_settle(tenant_id=tenant.pk, reference=jobs[3].pk, held=5, tokens=0)  # release only
    ref = f"cs_{tenant.pk}"  # external references are unique across tenants; compared as "cs_T"
    out["topup"] = external_entry_write(tenant=tenant, kind="topup", tokens=500, external_ref=ref, memo="pack")
    out["topup_again"] = external_entry_write(tenant=tenant, kind="topup", tokens=500, external_ref=ref)
    out["adjust"] = tokens_grant(tenant=tenant, tokens=-7, memo="typo", kind="adjustment")
    with pytest.raises(InsufficientBalance) as short:
        hold_place(tenant_id=tenant.pk, reference=jobs[3].pk, tokens=10_000)
    out["short"] = (str(short.value), short.value.extra)
    out["jobs"] = [j.pk for j in jobs]
    return out


def _columns(entry) -> tuple:
    return tuple(getattr(entry, name) for name in ROW) + (entry.external_ref.replace(str(entry.tenant_id), "T"),)


def _rows(tenant, jobs) -> list[tuple]:
    refs = {pk: i for i, pk in enumerate(jobs)}
    entries = LedgerEntry.objects.filter(tenant=tenant).order_by("id")
    return [(*_columns(e), refs.get(e.transcription_id)) for e in entries]


def _plain(value):
    """What a caller got back, comparable across paths (a saved entry as its columns)."""
    if isinstance(value, LedgerEntry):
        assert value.pk is not None and not value._state.adding and value.created_at is not None
        return _columns(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


class _Billed:
    def __init__(self):
        self.amounts = []

    def inc(self, amount):
        self.amounts.append(amount)


@pytest.mark.django_db
def test_both_paths_write_the_same_ledger_and_balance(single_statement, monkeypatch):
    actor = UserFactory()
    results = {}
    for on in (True, False):
        single_statement(on)
        billed = _Billed()
        monkeypatch.setattr(metrics, "TOKENS_BILLED", billed)
        tenant = TenantFactory()
        out = _script(tenant, actor)
        account = BalanceAccount.objects.get(tenant=tenant)
        results[on] = {
            "rows": _rows(tenant, out.pop("jobs")),
            "balance": (account.available, account.held),
            "returned": {key: _plain(value) for key, value in out.items()},
            "billed_metric": billed.amounts,
        }
        # What the caller got back is what was stored (id, running balances, created_at).
        stored = LedgerEntry.objects.get(pk=out["hold0"].pk)
        assert (stored.available_after, stored.held_after, stored.created_at) == (
            out["hold0"].available_after,
            out["hold0"].held_after,
            out["hold0"].created_at,
        )
        assert_ledger_invariant(tenant)
    for key in ("rows", "balance", "billed_metric"):
        assert results[True][key] == results[False][key], key
    for name, value in results[True]["returned"].items():
        assert value == results[False]["returned"][name], name
    assert results[True]["balance"] == (100 - 25 - 10 + 500 - 7, 0)
    assert results[True]["billed_metric"] == [25, 10]
    assert results[True]["returned"]["release1_again"] is None and results[True]["returned"]["topup_again"] is None
    kinds = [row[0] for row in results[True]["rows"]]
    assert kinds == [
        "grant", "hold", "hold", "hold", "hold_extend", "debit", "release", "release", "debit", "hold", "release",
        "topup", "adjustment",
    ]  # fmt: skip


@pytest.mark.parametrize("on, queries", [(True, 1), (False, 3)])
def test_a_hold_is_one_statement_on_postgres(single_statement, tenant, on, queries):
    """The one-statement path really runs (the comparison above compares two different paths)."""
    single_statement(on)
    tokens_grant(tenant=tenant, tokens=50, memo="t")
    (job,) = _jobs(tenant, 1)
    with CaptureQueriesContext(connection) as captured:
        hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=20)
    assert len(captured.captured_queries) == queries, [q["sql"][:80] for q in captured.captured_queries]
    with CaptureQueriesContext(connection) as captured:
        hold_settle(tenant_id=tenant.pk, reference=job.pk, held=20, tokens=5)  # a debit and a release
    assert len(captured.captured_queries) == (1 if on else 4)


@pytest.mark.parametrize("on", [True, False])
def test_a_short_balance_is_a_402_with_the_numbers(single_statement, tenant, on):
    single_statement(on)
    tokens_grant(tenant=tenant, tokens=12, memo="t")
    (job,) = _jobs(tenant, 1)
    with pytest.raises(InsufficientBalance) as short:
        hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=16)
    assert str(short.value) == (
        "This job needs up to 16 tokens but only 12 are available. "
        "Buy tokens in the dashboard (Billing) or via POST /api/v1/billing/checkout."
    )
    assert short.value.extra == {"needed_tokens": 16, "available_tokens": 12}
    hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=12)  # exactly covered
    with pytest.raises(InsufficientBalance) as short:
        hold_extend(tenant_id=tenant.pk, reference=job.pk, tokens=1)
    assert "needs up to 1 more tokens but only 0 are available. You were not charged." in str(short.value)
    assert short.value.extra == {"needed_tokens": 1, "available_tokens": 0}
    with pytest.raises(InsufficientBalance) as short:
        hold_extend(tenant_id=tenant.pk, reference=job.pk, tokens=3, message="The next minute needs 3 more tokens.")
    assert str(short.value) == "The next minute needs 3 more tokens."
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (0, 12)
    assert list(LedgerEntry.objects.filter(tenant=tenant).values_list("kind", flat=True)) == ["grant", "hold"]


@pytest.mark.parametrize("on", [True, False])
def test_a_missing_account_row_is_created_as_before(single_statement, tenant, on):
    single_statement(on)
    BalanceAccount.objects.filter(tenant=tenant).delete()
    (job,) = _jobs(tenant, 1)
    with pytest.raises(InsufficientBalance) as short:
        hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=5)
    assert short.value.extra == {"needed_tokens": 5, "available_tokens": 0}
    assert BalanceAccount.objects.filter(tenant=tenant).count() == 1
    BalanceAccount.objects.filter(tenant=tenant).delete()
    entry = tokens_grant(tenant=tenant, tokens=9, memo="t")
    assert (entry.available_after, entry.held_after) == (9, 0)
    assert_ledger_invariant(tenant)


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_never_overdraw_and_each_lands_once(single_statement):
    """24 holds of 10 race for 125 tokens: 12 land, each once; 12 get a 402 quoting what was left."""
    single_statement(True)
    tenant = TenantFactory()
    tokens_grant(tenant=tenant, tokens=125, memo="race")
    jobs = _jobs(tenant, 24)
    results = run_parallel(24, lambda i: hold_place(tenant_id=tenant.pk, reference=jobs[i].pk, tokens=10))
    held = [r for r in results if isinstance(r, LedgerEntry)]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert len(held) == 12 and len(refused) == 12, [r for r in results if not isinstance(r, LedgerEntry)][:3]
    assert all(r.extra["available_tokens"] < 10 for r in refused)
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (5, 120)
    holds = LedgerEntry.objects.filter(tenant=tenant, kind="hold").order_by("id")
    assert sorted(h.transcription_id for h in holds) == sorted(r.transcription_id for r in held)
    assert len({h.transcription_id for h in holds}) == 12
    # Ids are drawn under the row lock: the running balances step down by 10 in id order.
    assert [h.available_after for h in holds] == list(range(115, 4, -10))
    assert_ledger_invariant(tenant)


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_and_settles_keep_the_books(single_statement):
    """Holds and settles (debit + release in one statement) of one tenant interleave; the books balance."""
    single_statement(True)
    tenant = TenantFactory()
    tokens_grant(tenant=tenant, tokens=1000, memo="race")
    jobs = _jobs(tenant, 16)
    for job in jobs[:8]:
        hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=30)

    def work(i):
        if i < 8:
            return hold_settle(tenant_id=tenant.pk, reference=jobs[i].pk, held=30, tokens=i)
        return hold_place(tenant_id=tenant.pk, reference=jobs[i].pk, tokens=40)

    results = run_parallel(16, work)
    assert not [r for r in results if isinstance(r, Exception)]
    account = BalanceAccount.objects.get(tenant=tenant)
    billed = sum(range(8))
    assert (account.available, account.held) == (1000 - billed - 8 * 40, 8 * 40)
    assert LedgerEntry.objects.filter(tenant=tenant, kind="debit").count() == 7  # job 0 billed nothing
    assert LedgerEntry.objects.filter(tenant=tenant, kind="release").count() == 8
    assert_ledger_invariant(tenant)
