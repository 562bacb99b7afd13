"""OpenAPI: the documented error shape on every operation, and paginated list schemas.

The schema is generated from the same serializers that render responses; this module adds what the views
cannot say one by one: which error statuses each operation can answer, all in the one error shape.
"""

from __future__ import annotations

from rest_framework import serializers

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: a stable machine code and a message that says what to do.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "invalid_request"},
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "request_id": {
                    "type": "string",
                    "description": "On 500 and 503: the X-Request-ID of the request, for support.",
                },
            },
            "required": ["code", "message"],
            "additionalProperties": True,
        }
    },
    "required": ["error"],
}

DESCRIPTIONS = {
    "400": "The request is invalid; the message names the field and what is wrong.",
    "401": "Missing or invalid API key (send `Authorization: Bearer <key>`).",
    "402": "The balance cannot cover the hold for this audio; buy tokens and retry.",
    "404": "No such object for this tenant (another tenant's id is a 404 too); on a list, no such page.",
    "409": "Conflicts with the object's state or an earlier request with the same Idempotency-Key.",
    "413": "The upload is larger than the limit.",
    "415": "The file is not audio Tingxie can read.",
    "422": "The audio is readable but cannot be transcribed (for example too long).",
    "429": "Too many requests; retry after the Retry-After header's seconds.",
    "500": "An unexpected server error (code `internal_error`); it is logged under the body's `request_id`.",
    "503": "A dependency (database, payment provider) is unavailable (code `service_unavailable`); retry after "
    "the Retry-After header's seconds.",
    "504": "Still running after the wait; the transcription continues (poll it by id).",
}
COMMON = ("400", "401", "429", "500", "503")


def _paginated(operation: dict) -> bool:
    """A list answered by portal.pagination.Pagination (its 200 is a `paginated()` page)."""
    schema = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {})
    return schema.get("schema", {}).get("$ref", "").startswith("#/components/schemas/Paginated")


def _statuses(path: str, method: str, operation: dict) -> list[str]:
    codes = list(COMMON)
    if "{" in path or _paginated(operation):  # no such object; a page past the last one
        codes.append("404")
    if method == "post" and path.rstrip("/").endswith(("/transcriptions", "/audio/transcriptions")):
        codes += ["402", "409", "413", "415"]
    if method == "post" and path.rstrip("/") == "/api/v1/transcriptions":
        codes.append("404")  # `hotword_list` or a `speaker_ids` entry names none of this tenant's
    if method == "post" and path.rstrip("/").endswith(("/speakers", "/voiceprint/register", "/voiceprint/identify")):
        codes += ["413", "415"]  # voice samples are uploads
    if path.rstrip("/").endswith(("/voiceprint/register", "/voiceprint/identify")):
        codes += ["422", "504"]  # no speech in the sample; the worker did not answer within the wait
    if path.rstrip("/").endswith("/voiceprint/identify"):
        codes.append("404")  # a speaker_ids entry names none of this tenant's speakers
    if path.rstrip("/").endswith("/audio/transcriptions"):
        codes += ["422", "504"]
    if path.endswith(("/cancel", "/transcript")):
        codes.append("409")
    return sorted(set(codes))


def _integer_header(description: str) -> dict:
    return {"schema": {"type": "integer"}, "description": description}


# Every response of an operation called with an API key (TenantApi's throttles).
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": _integer_header("Requests allowed per window for this API key (submit or read rate)."),
    "RateLimit-Remaining": _integer_header("Requests left in the current window."),
    "RateLimit-Reset": _integer_header("Seconds until a request is free again in the window."),
    "x-ratelimit-remaining-requests": _integer_header("The same count under OpenAI's name."),
}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present when the answer is an earlier request's job (same Idempotency-Key; on "
        "/v1/audio/transcriptions also an identical request whose job is still running, or an SDK retry).",
    }
}
NO_RETRY_HEADER = {
    "x-should-retry": {
        "schema": {"type": "string", "enum": ["false"]},
        "description": "The job continues: the OpenAI SDKs do not retry (which would only attach to it).",
    }
}


def _document_headers(path: str, method: str, operation: dict) -> None:
    responses = operation.get("responses", {})
    if operation.get("security") and any("ApiKeyAuth" in s for s in operation["security"]):
        for response in responses.values():
            response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
    if method == "post" and path in ("/api/v1/transcriptions", "/v1/audio/transcriptions"):
        for code in ("200", "202"):
            if code in responses:
                responses[code].setdefault("headers", {}).update(REPLAYED_HEADER)
    if "504" in responses and path == "/v1/audio/transcriptions":
        responses["504"].setdefault("headers", {}).update(NO_RETRY_HEADER)


def error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular POSTPROCESSING_HOOK: document the error shape and statuses on every API operation, and
    the rate-limit and replay headers."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _statuses(path, method, operation):
                responses.setdefault(code, {"description": DESCRIPTIONS[code], "content": ref})
            _document_headers(path, method, operation)
    return result


def paginated(serializer_class: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of one page of `serializer_class` items as portal.pagination.Pagination answers it."""
    name = serializer_class.__name__.removesuffix("Serializer")
    return type(
        f"Paginated{name}List",
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
