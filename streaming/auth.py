"""Who is streaming: API keys on the WebSocket handshake (the same keys and checks as the REST API), or a
short-lived ticket the dashboard's /app/live/ page gets for its signed-in user.

Stock FunASR clients cannot add paths, so these forms are accepted: `Authorization: Bearer <key>`, Xiaozhi's
`Authorization: Bearer; <key>`, the subprotocol `openai-insecure-api-key.<key>` (OpenAI Realtime in browsers),
`?api_key=<key>` (browsers cannot set headers on a WebSocket), `?ticket=`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from django.core import signing

from tenants.authentication import _touch
from tenants.models import ApiKey, Membership, Tenant

TICKET_SALT = "tingxie.stream-ticket"
TICKET_MAX_AGE_S = 300
BROWSER_KEY_PREFIX = "openai-insecure-api-key."  # the key as a WebSocket subprotocol (OpenAI Realtime, browsers)


class AuthError(Exception):
    """Why the handshake is refused (401)."""


@dataclass(frozen=True)
class Caller:
    tenant: Tenant
    api_key: ApiKey | None = None
    user: object | None = None


def _query(scope: dict, name: str) -> str:
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    return (query.get(name) or [""])[0].strip()


def raw_key_from_scope(scope: dict) -> str:
    for name, value in scope.get("headers") or []:
        if name.lower() == b"authorization":
            header = value.decode("latin-1").strip()
            if header[:6].lower() != "bearer" or header[6:7] not in ("", " ", ";"):
                raise AuthError("Use 'Authorization: Bearer <api key>'.")
            return header[6:].lstrip(";").strip()
    for offered in scope.get("subprotocols") or []:  # browsers on the OpenAI Realtime protocol (openai-node)
        if offered.startswith(BROWSER_KEY_PREFIX):
            return offered[len(BROWSER_KEY_PREFIX) :].strip()
    return _query(scope, "api_key")


def api_key_authenticate(raw_key: str) -> ApiKey:
    """The key's row (with its tenant); AuthError for a missing, unknown, revoked or expired key."""
    if not raw_key:
        raise AuthError("An API key is required: 'Authorization: Bearer <key>' or '?api_key=<key>'.")
    try:
        key = ApiKey.objects.get_from_key(raw_key)
    except ApiKey.DoesNotExist:
        raise AuthError("Unknown API key.") from None
    if key.has_expired or key.revoked:
        raise AuthError("This API key is revoked or expired.")
    _touch(key)
    key.tenant  # noqa: B018  (loaded here, in a thread that may use the database)
    return key


def stream_ticket_create(*, tenant: Tenant, user) -> str:
    """A signed ticket for `user` to stream for `tenant` from the browser, valid TICKET_MAX_AGE_S."""
    return signing.dumps({"t": tenant.pk, "u": user.pk}, salt=TICKET_SALT, compress=True)


def ticket_authenticate(ticket: str) -> Caller:
    try:
        data = signing.loads(ticket, salt=TICKET_SALT, max_age=TICKET_MAX_AGE_S)
    except signing.BadSignature:
        raise AuthError("The stream ticket is invalid or expired; reload the page.") from None
    membership = Membership.objects.select_related("tenant", "user").filter(tenant_id=data["t"], user_id=data["u"])
    membership = membership.first()
    if membership is None or not membership.user.is_active:
        raise AuthError("This user is no longer a member of the tenant.")
    return Caller(tenant=membership.tenant, user=membership.user)


def caller_authenticate(scope: dict) -> Caller:
    """Resolve the handshake's credentials (runs in a thread: it queries the database)."""
    ticket = _query(scope, "ticket")
    if ticket:
        return ticket_authenticate(ticket)
    key = api_key_authenticate(raw_key_from_scope(scope))
    return Caller(tenant=key.tenant, api_key=key)
