"""The ingest contract of docs/events.md, written onto the OpenAPI document ingest serves.

Ingest documents its bodies and answers (services/ingest/openapi.py), but loosely, as a
reference for integrators: webhook bodies are plain objects, and an event's time is any
date-time. To generate traffic that mostly gets through (and so really gets published), the
fuzz tests load the served document with ``schemathesis.openapi.from_asgi`` and tighten it
from docs/events.md:

* the request bodies: canonical events (one, or a batch), CloudEvents structured and batch
  mode, Chatwoot JSON, Twilio form parameters and Asterisk queue_log text;
* the answers: 202 ``{"accepted", "ignored", "ids"}``, and RFC 9457 problem details for
  401, 404, 413, 415, 422 and 503 (``Retry-After``);
* the bearer token security scheme of ``/v1/events`` (and of the token connectors).

The body schemas are deliberately tight (known types, enum values, times between 2010 and
2024) so that most generated events are valid and really get published; negative generation
and the dedicated rule tests (test_event_rules.py) cover the rest.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from shared.events import (
    MAX_DURATION_SECONDS,
    MAX_ID_LEN,
    MAX_LABEL_LEN,
    MAX_LABELS,
    Author,
    Direction,
    EventType,
    Status,
    SurveyKind,
)

PROBLEM_JSON: Final = "application/problem+json"

PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "pattern": "^https://supportpulse\\.dev/problems/[a-z][a-z-]*$"},
        "title": {"type": "string", "minLength": 1},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "minLength": 1},
        "errors": {"type": "array"},
    },
}

ACCEPTED_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["accepted", "ignored", "ids"],
    "additionalProperties": False,
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "ignored": {"type": "integer", "minimum": 0},
        "ids": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+:[0-9a-f]{32}$"}},
    },
}

_ID: Final = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN}
_SHORT: Final = {"type": "string", "minLength": 1, "maxLength": 40}
_SECONDS: Final = {"type": "number", "minimum": 0, "maximum": MAX_DURATION_SECONDS}
# RFC 3339 with a zone, 2010..2024: inside [2000-01-01, now + 1 day] whenever the tests run.
TIME_PATTERN: Final = (
    "^20(1[0-9]|2[0-4])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])$"
)

# The canonical fields (shared/events.py, docs/events.md), without the server-filled tenant.
EVENT_FIELDS: Final[dict[str, Any]] = {
    "id": _ID,
    "source": _SHORT,
    "type": {"enum": [t.value for t in EventType]},
    "occurred_at": {"type": "string", "pattern": TIME_PATTERN},
    "conversation_id": _ID,
    "channel": {"type": "string", "maxLength": 20},
    "team": _SHORT,
    "queue": _SHORT,
    "agent": _SHORT,
    "customer": _SHORT,
    "priority": _SHORT,
    "labels": {
        "type": "array",
        "maxItems": MAX_LABELS,
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_LEN},
    },
    "status": {"enum": [s.value for s in Status]},
    "message_id": _SHORT,
    "direction": {"enum": [d.value for d in Direction]},
    "author": {"enum": [a.value for a in Author]},
    "private": {"type": "boolean"},
    "automated": {"type": "string", "maxLength": 20},
    "wait_seconds": _SECONDS,
    "talk_seconds": _SECONDS,
    "hold_seconds": _SECONDS,
    "wrap_seconds": _SECONDS,
    "survey": {"enum": [s.value for s in SurveyKind]},
    "survey_id": _SHORT,
    "score": {"type": "integer", "minimum": 0, "maximum": 10},
    "comment": {"type": "string", "maxLength": 200},
    "agent_status": {"type": "string", "maxLength": 20},
    "attributes": {"type": "object", "maxProperties": 3},
}

EVENT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["id", "source", "type", "occurred_at", "conversation_id"],
    "additionalProperties": False,
    "properties": EVENT_FIELDS,
}

CLOUDEVENT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["specversion", "id", "source", "type", "time", "data"],
    "additionalProperties": False,
    "properties": {
        "specversion": {"const": "1.0"},
        "id": _ID,
        "source": _SHORT,
        "type": {"enum": [f"com.supportpulse.{t.value}" for t in EventType]},
        "time": {"type": "string", "pattern": TIME_PATTERN},
        "subject": _ID,
        "datacontenttype": {"const": "application/json"},
        "data": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: v for k, v in EVENT_FIELDS.items() if k not in ("id", "type", "source")},
        },
    },
}

CHATWOOT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["event"],
    "properties": {
        "event": {
            "enum": [
                "conversation_created",
                "conversation_status_changed",
                "conversation_updated",
                "message_created",
                "message_updated",
                "conversation_typing_on",
                "webwidget_triggered",
            ]
        },
        "id": {"type": "integer", "minimum": 1},
        "account": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}},
        "created_at": {"type": "string", "pattern": TIME_PATTERN},
        "message_type": {"enum": ["incoming", "outgoing", "activity", "template"]},
        "conversation": {"type": "object"},
    },
}

# Asterisk queue_log lines: time|callid|queue|agent|event|data1|data2|data3
QUEUE_LOG_PATTERN: Final = (
    "^(1[3-6][0-9]{8}\\|[0-9]{10}\\.[0-9]{1,3}\\|(support|sales|NONE)\\|(SIP/[0-9]{3,4}|NONE)\\|"
    "(ENTERQUEUE|CONNECT|ABANDON|COMPLETEAGENT|COMPLETECALLER|EXITWITHTIMEOUT|RINGNOANSWER|PAUSE|ADDMEMBER)"
    "\\|[0-9]{0,3}\\|[0-9]{0,3}\\|[0-9]{0,3}\n){1,5}$"
)


def _problem(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if retry_after:
        response["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string"}}}
    return response


ACCEPTED: Final = {
    "description": "Kafka acknowledged every event and the raw payload.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
}
ERRORS: Final[dict[str, Any]] = {
    "401": _problem("Bad or missing signature or token, stale timestamp."),
    "404": _problem("Unknown connector, or connector not configured for the tenant."),
    "413": _problem("Body or batch too large."),
    "415": _problem("Content type the connector does not take."),
    "422": _problem("Invalid payload; the detail names the field."),
    "503": _problem("Kafka did not acknowledge in time; retry.", retry_after=True),
}


def with_contract(served: dict[str, Any]) -> dict[str, Any]:
    """``served`` (the document ingest serves) with the documented bodies and answers added."""
    doc = copy.deepcopy(served)
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(
        {"Problem": PROBLEM_SCHEMA, "Accepted": ACCEPTED_SCHEMA, "Event": EVENT_SCHEMA}
    )
    components["securitySchemes"] = {"IngestToken": {"type": "http", "scheme": "bearer"}}
    event_ref = {"$ref": "#/components/schemas/Event"}

    events = doc["paths"]["/v1/events"]["post"]
    events["security"] = [{"IngestToken": []}]
    events["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"anyOf": [event_ref, {"type": "array", "maxItems": 5, "items": event_ref}]}
            },
            "application/cloudevents+json": {"schema": CLOUDEVENT_SCHEMA},
            "application/cloudevents-batch+json": {
                "schema": {"type": "array", "maxItems": 3, "items": CLOUDEVENT_SCHEMA}
            },
        },
    }
    events["responses"] = {"202": ACCEPTED, **{k: v for k, v in ERRORS.items() if k != "404"}}

    webhook = doc["paths"]["/v1/webhooks/{connector}/{tenant}"]["post"]
    for parameter in webhook["parameters"]:
        if parameter["name"] == "connector":
            parameter["schema"] = {"enum": ["generic", "chatwoot", "twilio", "asterisk"]}
        if parameter["name"] == "tenant":
            parameter["schema"] = {"enum": ["t1", "legacy", "t2"]}
    webhook["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": CHATWOOT_SCHEMA},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["AccountSid"],
                    "properties": {"AccountSid": {"type": "string"}, "EventType": {"type": "string"}},
                    "additionalProperties": {"type": "string"},
                }
            },
            "text/plain": {"schema": {"type": "string", "pattern": QUEUE_LOG_PATTERN}},
        },
    }
    webhook["responses"] = {"202": ACCEPTED, **ERRORS}

    doc["paths"]["/readyz"]["get"]["responses"]["503"] = _problem("Kafka unreachable.")
    return doc
