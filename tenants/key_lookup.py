"""The API key lookup of every API request, as one statement written once: the usable key with this prefix and
its tenant, the rows ApiKeyManager.get_usable_keys().get(prefix=...) reads (select_related("tenant")).

The ORM compiled that filter, join and select anew on every request: about a fifth of the web tier's CPU under
load (issue 13). The statement text comes from the models' metadata, the values go through the same converters
the ORM applies (SQLCompiler.apply_converters), and the instances are built with Model.from_db
(portal.model_rows), the tenant cached on the key as select_related caches it. Checking the secret stays with the
library (AbstractAPIKey.is_valid).
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from portal.model_rows import ModelColumns


@cache
def _statement(vendor: str):
    from tenants.models import ApiKey, Tenant

    quote = connection.ops.quote_name
    key_cols, tenant_cols = ModelColumns(ApiKey, "k"), ModelColumns(Tenant, "t")
    sql = (
        f"SELECT {key_cols.sql}, {tenant_cols.sql} FROM {quote(ApiKey._meta.db_table)} k "  # noqa: S608 - names from _meta only
        f"INNER JOIN {quote(Tenant._meta.db_table)} t ON t.{quote(Tenant._meta.pk.column)} = "
        f"k.{quote(ApiKey._meta.get_field('tenant').column)} "
        f"WHERE k.{quote(ApiKey._meta.get_field('prefix').column)} = %s "
        f"AND k.{quote(ApiKey._meta.get_field('revoked').column)} = %s"
    )
    return sql, key_cols, tenant_cols


def usable_key_with_tenant(prefix: str):
    """The unrevoked ApiKey with this prefix, its tenant loaded with it, or None."""
    from tenants.models import ApiKey

    sql, key_cols, tenant_cols = _statement(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix, False])
        row = cursor.fetchone()
    if row is None:
        return None
    key, tenant = key_cols.instance(row[: len(key_cols)]), tenant_cols.instance(row[len(key_cols) :])
    ApiKey.tenant.field.set_cached_value(key, tenant)
    return key
