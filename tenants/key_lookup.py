"""The API key lookup of every API request, as one statement written once: the usable key with this prefix and
its tenant, the rows ApiKeyManager.get_usable_keys().get(prefix=...) reads (select_related("tenant")).

The ORM compiled that filter, join and select anew on every request: about a fifth of the web tier's CPU under
load (issue 13). The statement text comes from the models' metadata, the values go through the same converters
the ORM applies (SQLCompiler.apply_converters), and the instances are built with Model.from_db, the tenant cached
on the key as select_related caches it. Checking the secret stays with the library (AbstractAPIKey.is_valid).
"""

from __future__ import annotations

from functools import cache

from django.db import connection


@cache
def _statement(vendor: str):
    from tenants.models import ApiKey, Tenant

    quote = connection.ops.quote_name
    key_fields, tenant_fields = ApiKey._meta.concrete_fields, Tenant._meta.concrete_fields
    key_cols = [field.get_col("k") for field in key_fields]
    tenant_cols = [field.get_col("t") for field in tenant_fields]
    selected = ", ".join(f"{quote(col.alias)}.{quote(col.target.column)}" for col in key_cols + tenant_cols)
    sql = (
        f"SELECT {selected} FROM {quote(ApiKey._meta.db_table)} k "  # noqa: S608 - names from _meta only
        f"INNER JOIN {quote(Tenant._meta.db_table)} t ON t.{quote(Tenant._meta.pk.column)} = "
        f"k.{quote(ApiKey._meta.get_field('tenant').column)} "
        f"WHERE k.{quote(ApiKey._meta.get_field('prefix').column)} = %s "
        f"AND k.{quote(ApiKey._meta.get_field('revoked').column)} = %s"
    )
    converters = [
        (i, connection.ops.get_db_converters(col) + col.get_db_converters(connection), col)
        for i, col in enumerate(key_cols + tenant_cols)
    ]
    converters = [(i, funcs, col) for i, funcs, col in converters if funcs]
    return sql, [f.attname for f in key_fields], [f.attname for f in tenant_fields], converters


def usable_key_with_tenant(prefix: str):
    """The unrevoked ApiKey with this prefix, its tenant loaded with it, or None."""
    from tenants.models import ApiKey, Tenant

    sql, key_names, tenant_names, converters = _statement(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix, False])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for i, funcs, col in converters:
        for convert in funcs:
            values[i] = convert(values[i], col, connection)
    key = ApiKey.from_db(connection.alias, key_names, values[: len(key_names)])
    tenant = Tenant.from_db(connection.alias, tenant_names, values[len(key_names) :])
    ApiKey.tenant.field.set_cached_value(key, tenant)
    return key
