"""What the ingest routes document in OpenAPI: their bodies, their auth and every answer.

The routes read raw bytes themselves (signatures are computed over them), so FastAPI cannot
infer any of this; it is written here once, from the same model the connectors validate.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from shared.events import Event
from shared.problems import PROBLEM_JSON

_refs, _schemas = msgspec.json.schema_components([Event], ref_template="#/components/schemas/{name}")
EVENT_SCHEMA: Final[dict[str, Any]] = dict(_schemas["Event"])
# The tenant comes from the token; an event may omit it (and must match it if present).
EVENT_SCHEMA["required"] = [f for f in EVENT_SCHEMA.get("required", []) if f != "tenant"]

PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}

ACCEPTED_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["accepted", "ignored", "ids"],
    "properties": {
        "accepted": {"type": "integer", "description": "Events published (Kafka acknowledged them)."},
        "ignored": {"type": "integer", "description": "Vendor events accepted but not mapped."},
        "ids": {"type": "array", "items": {"type": "string"}},
    },
}


def _problem(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
    }
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
    return response


RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    202: {
        "description": "Kafka acknowledged every event and the raw payload.",
        "content": {"application/json": {"schema": ACCEPTED_SCHEMA}},
    },
    401: _problem("Bad or missing signature or token, or a stale timestamp."),
    404: _problem("Unknown connector, or the connector is not configured for the tenant."),
    413: _problem("Body larger than the limit, or more than 1,000 events."),
    415: _problem("A content type the connector does not take."),
    422: _problem("Invalid payload; the detail names the field and the reason."),
    503: _problem("Kafka did not acknowledge in time: retry after the given seconds.", retry_after=True),
}

_EVENTS_OR_BATCH: Final = {
    "oneOf": [EVENT_SCHEMA, {"type": "array", "items": EVENT_SCHEMA, "maxItems": 1000}]
}

EVENTS_EXTRA: Final[dict[str, Any]] = {
    "security": [{"IngestToken": []}],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _EVENTS_OR_BATCH,
                "example": {
                    "id": "crm-42-created",
                    "source": "crm:eu",
                    "type": "conversation.created",
                    "occurred_at": "2026-11-20T10:00:00Z",
                    "conversation_id": "crm:eu:42",
                    "channel": "email",
                },
            },
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    },
}

WEBHOOK_EXTRA: Final[dict[str, Any]] = {
    "description": (
        "`chatwoot`: JSON signed with X-Chatwoot-Signature; `twilio`: form-encoded, signed with "
        "X-Twilio-Signature; `asterisk`: queue_log lines with the tenant's bearer ingest token; "
        "`generic`: as POST /v1/events. See docs/events.md."
    ),
    "security": [{}, {"IngestToken": []}],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    },
}


def add_security_scheme(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["IngestToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The tenant's ingest token (tenants file).",
    }
    return schema
