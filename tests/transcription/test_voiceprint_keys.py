"""Xiaozhi's health check takes the key as `?key=`: a malformed one is a 401, never a server error."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["%00abc", "abc.def", "%C3%BF%01", ""])
def test_malformed_query_keys_are_401(client, key):
    response = client.get(f"/voiceprint/health?key={key}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.django_db
def test_query_key_and_header_key_both_work(client, api_key):
    assert client.get(f"/voiceprint/health?key={api_key[1]}").json()["status"] == "healthy"
    assert client.get("/voiceprint/health", HTTP_AUTHORIZATION=f"Bearer {api_key[1]}").status_code == 200
