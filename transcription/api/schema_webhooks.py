"""OpenAPI: the webhook Tingxie POSTs when a transcription ends, its payload and its signature.

OpenAPI 3.0 has no `webhooks` section; ReDoc renders the `x-webhooks` extension, and the payload is a
component (`WebhookEvent`) that client generators see.
"""

from __future__ import annotations

SIGNATURE_HELP = (
    "`t=<unix seconds>,v1=<hex>`: v1 is HMAC-SHA256 over `<t>.` followed by the raw request body, keyed with "
    "the tenant's webhook secret (dashboard: Developers; API: GET /api/v1/webhook-secret). Recompute it from "
    "the body as received, compare in constant time, and refuse a `t` more than 5 minutes old."
)


def _transcription_ref(result: dict) -> dict:
    """The schema of a transcription as the API answers it (the webhook's `data`)."""
    create = result.get("paths", {}).get("/api/v1/transcriptions", {}).get("post", {})
    content = create.get("responses", {}).get("202", {}).get("content", {}).get("application/json", {})
    return content.get("schema", {"type": "object"})


def webhooks_document(result: dict, generator=None, request=None, public=None) -> dict:
    """drf-spectacular POSTPROCESSING_HOOK: the WebhookEvent component and the `x-webhooks` operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["WebhookEvent"] = {
        "type": "object",
        "description": "POSTed to the transcription's webhook_url when it ends; retried with backoff (10 s, "
        "1 min, 5 min, 30 min, 2 h) until a 2xx answer. The job's `webhook` field shows the delivery.",
        "properties": {
            "type": {
                "type": "string",
                "enum": ["transcription.succeeded", "transcription.failed", "transcription.canceled"],
            },
            "data": _transcription_ref(result),
        },
        "required": ["type", "data"],
    }
    result["x-webhooks"] = {
        "transcription": {
            "post": {
                "summary": "A transcription ended (sent to its webhook_url)",
                "operationId": "webhook_transcription",
                "parameters": [
                    {
                        "name": "Tingxie-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "example": "t=1767225600,v1=5257a869e7ecebed..."},
                        "description": SIGNATURE_HELP,
                    },
                    {
                        "name": "Tingxie-Event-Id",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "`<transcription id>:<status>`: the same on every retry (deduplicate on it).",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}},
                },
                "responses": {"200": {"description": "Any 2xx ends the retries."}},
            }
        }
    }
    return result
