"""Row locks for money, always taken in one order: the transcription (transcription.services.common), then
the account (Saleor's lock_objects idea).

On SQLite `select_for_update` is a no-op; there the IMMEDIATE transaction mode (settings)
serialises writers instead. On PostgreSQL a money write (billing.balance_sql) takes the account lock with its own
UPDATE; `account_lock` is for callers that must read the balance under the lock first.
"""

from __future__ import annotations

from billing.models import BalanceAccount


def account_lock(*, tenant_id: int) -> BalanceAccount:
    account = BalanceAccount.objects.select_for_update().filter(tenant_id=tenant_id).first()
    if account is None:
        BalanceAccount.objects.get_or_create(tenant_id=tenant_id)
        account = BalanceAccount.objects.select_for_update().get(tenant_id=tenant_id)
    return account
