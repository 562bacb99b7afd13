"""The API key lookup (tenants.key_lookup through ApiKeyManager.get_from_key) reads what the library's ORM lookup
reads, in one statement, and refuses what it refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from tenants.models import ApiKey
from tenants.services import api_key_create, api_key_revoke


def _orm(prefix: str) -> ApiKey:
    return ApiKey.objects.get_usable_keys().get(prefix=prefix)


@pytest.mark.django_db
def test_the_key_and_its_tenant_are_what_the_orm_reads(tenant, django_assert_num_queries):
    user_key, raw = api_key_create(tenant=tenant, name="ci", expiry_date=timezone.now() + timedelta(days=3))
    ApiKey.objects.filter(pk=user_key.pk).update(last_used_at=timezone.now())
    with django_assert_num_queries(1):
        key = ApiKey.objects.get_from_key(raw)
        tenant_seen = key.tenant  # loaded with the key, as select_related("tenant") does
    expected = _orm(user_key.prefix)
    assert type(key) is ApiKey and not key._state.adding and key._state.db == "default"
    assert model_to_dict(key) == model_to_dict(expected) and key.pk == expected.pk
    assert (key.created, key.last_used_at, key.expiry_date) == (expected.created, expected.last_used_at,
                                                                 expected.expiry_date)  # fmt: skip
    assert model_to_dict(tenant_seen) == model_to_dict(expected.tenant)
    assert tenant_seen.created_at == expected.tenant.created_at and not key.has_expired


@pytest.mark.django_db
def test_unknown_wrong_revoked_keys_are_refused_and_expired_ones_are_told(tenant):
    key, raw = api_key_create(tenant=tenant, name="ci")
    prefix, _, secret = raw.partition(".")
    wrong = secret[:-1] + ("y" if secret.endswith("x") else "x")  # one character off (never the secret itself)
    for bad in ("nosuch.key", f"{prefix}.{wrong}", f"{prefix}.", prefix):
        with pytest.raises(ApiKey.DoesNotExist):
            ApiKey.objects.get_from_key(bad)
    assert ApiKey.objects.get_from_key(raw).pk == key.pk
    api_key_revoke(key=key)
    with pytest.raises(ApiKey.DoesNotExist):
        ApiKey.objects.get_from_key(raw)
    old, old_raw = api_key_create(tenant=tenant, name="old", expiry_date=timezone.now() - timedelta(seconds=1))
    assert ApiKey.objects.get_from_key(old_raw).has_expired  # the authentication answers 401 "revoked or expired"


@pytest.mark.django_db
def test_the_api_authenticates_through_it(api_client, tenant):
    assert api_client.get("/api/v1/balance").status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION="Bearer nosuch.key")
    response = api_client.get("/api/v1/balance")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
