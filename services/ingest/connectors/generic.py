"""Generic connector: canonical events posted directly to ``POST /v1/events``.

Follows our own event model (``shared/events.py``, docs/events.md) and CloudEvents 1.0
structured mode (JSON event format) and batch mode.

Accepted bodies:

* ``application/json``: one canonical event object, or an array of up to 1000;
* ``application/cloudevents+json``: one CloudEvent whose ``data`` holds canonical fields;
* ``application/cloudevents-batch+json``: an array of such CloudEvents (up to 1000).

Decisions:

* The caller's ``id`` is kept unique per ``source`` (CloudEvents: ``source`` + ``id`` identify
  an event), so the stored id is ``generic:<hash(tenant, source, id)>``; a client retry
  with the same pair dedupes, two sources reusing an id do not collide.
* CloudEvent ``type`` is ``com.supportpulse.<canonical type>`` or the bare canonical type;
  other types pass through unchanged (the aggregator counts and skips types it does not
  know, so producers can send future types). ``time`` fills ``occurred_at`` and ``subject``
  fills ``conversation_id`` when ``data`` lacks them; ``source`` fills ``source``.
* ``tenant`` is filled from the authenticated request when omitted and must match it when
  present. Unknown channels become ``other``. One bad event rejects the whole batch, with
  its index in the message (``[3].occurred_at: ...``), so nothing is half-published.
* The bearer token in :class:`GenericConfig` is checked by the HTTP layer, not here.

Each event is validated once: ``msgspec.convert`` into :class:`Event` applies the model's field
bounds, then ``rule_problems``; the NUL rule is one search of the whole body. Nothing goes
through the wire form again (unlike the connectors that build events in code, see
``checks.checked``). This is the hot path of batch ingestion (bench/README.md, ingest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec
from pydantic import BaseModel, ConfigDict, SecretStr

from services.ingest.connectors.base import InvalidPayload, Mapped, UnsupportedMediaType, WebhookRequest
from services.ingest.connectors.checks import validation_message
from services.ingest.connectors.ids import event_id
from services.ingest.connectors.payload import decode_json, expect_object, req_str, shown, type_name
from services.ingest.connectors.timeparse import parse_time
from shared.events import NUL_ESCAPE, SCHEMA_VERSION, Event, normalise_channel, problems, rule_problems

NAME: Final = "generic"
MAX_BATCH: Final = 1000
CE_TYPE_PREFIX: Final = "com.supportpulse."
JSON: Final = "application/json"
CE_SINGLE: Final = "application/cloudevents+json"
CE_BATCH: Final = "application/cloudevents-batch+json"


class GenericConfig(BaseModel):
    # hide_input_in_errors: a misplaced secret must not be echoed in a start-up error.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # Checked by the HTTP layer (bearer token); None means the route relies on other auth.
    token: SecretStr | None = None


class GenericConnector:
    name: str = NAME

    def handle(self, request: WebhookRequest, config: object) -> Mapped:
        if not isinstance(config, GenericConfig):
            raise TypeError(f"generic connector needs GenericConfig, got {type(config).__name__}")
        content_type = request.content_type
        if content_type not in (JSON, CE_SINGLE, CE_BATCH):
            raise UnsupportedMediaType(
                f"content-type: {content_type or 'missing'!r} is not one of {JSON}, {CE_SINGLE}, {CE_BATCH}"
            )
        body = decode_json(request.body)
        ctx = _Context(request, _nul_free(request))
        if content_type == CE_SINGLE:
            return Mapped(events=[_from_cloudevent(expect_object(body, "body"), "", ctx)])
        if content_type == CE_BATCH:
            items = _batch(body)
            return Mapped(events=[_from_cloudevent(_item(x, i), f"[{i}].", ctx) for i, x in enumerate(items)])
        if isinstance(body, dict):
            return Mapped(events=[_from_canonical(body, "", ctx)])
        items = _batch(body)
        return Mapped(events=[_from_canonical(_item(x, i), f"[{i}].", ctx) for i, x in enumerate(items)])


@dataclass(frozen=True, slots=True)
class _Context:
    request: WebhookRequest
    # No string of any event can hold a NUL (see _nul_free): only the other rules are checked.
    nul_free: bool


def _nul_free(request: WebhookRequest) -> bool:
    """Every string of the events comes from the JSON body (which can only carry NUL escaped) or
    is the tenant's name: one search each instead of one per event."""
    return NUL_ESCAPE not in request.body and "\x00" not in request.tenant


def _batch(body: object) -> list[Any]:
    if not isinstance(body, list):
        raise InvalidPayload(f"body: expected an event object or an array of events, got {type_name(body)}")
    if len(body) > MAX_BATCH:
        raise InvalidPayload(f"body: batch of {len(body)} events exceeds the limit of {MAX_BATCH}")
    return body


def _item(value: object, index: int) -> dict[str, Any]:
    return expect_object(value, f"[{index}]")


def _from_canonical(fields: dict[str, Any], where: str, ctx: _Context) -> Event:
    # Filled in place: the dict is this request's decoded body, read once.
    event = _convert(fields, where, ctx.request)
    return _finish(event, event.source, event.id, where, ctx)


def _from_cloudevent(ce: dict[str, Any], where: str, ctx: _Context) -> Event:
    request = ctx.request
    path = where.rstrip(".")
    spec = ce.get("specversion")
    if spec != "1.0":
        raise InvalidPayload(f"{where}specversion: expected '1.0', got {shown(spec)}")
    ce_id = req_str(ce, "id", path)
    ce_source = req_str(ce, "source", path)
    ce_type = req_str(ce, "type", path)
    if "data_base64" in ce:
        raise InvalidPayload(f"{where}data_base64: binary data is not supported, send JSON in data")
    content_type = ce.get("datacontenttype")
    if content_type is not None and (not isinstance(content_type, str) or "json" not in content_type.lower()):
        raise InvalidPayload(f"{where}datacontenttype: expected a JSON media type, got {shown(content_type)}")
    data = dict(expect_object(ce.get("data"), f"{where}data"))
    canonical_type = ce_type.removeprefix(CE_TYPE_PREFIX)
    if data.get("type", canonical_type) != canonical_type:
        raise InvalidPayload(f"{where}data.type: {shown(data['type'])} does not match type {ce_type!r}")
    data["type"] = canonical_type
    data.setdefault("id", ce_id)
    if data.get("source") is None:
        data["source"] = ce_source
    if data.get("conversation_id") is None and ce.get("subject") is not None:
        data["conversation_id"] = ce["subject"]
    if data.get("occurred_at") is None:
        if ce.get("time") is None:
            raise InvalidPayload(f"{where}data.occurred_at: required (or set the CloudEvent time)")
        data["occurred_at"] = parse_time(ce["time"], field=f"{where}time", now=request.received_at)
    event = _convert(data, f"{where}data.", request)
    # CloudEvents identity is source + id of the envelope, whatever data repeats.
    return _finish(event, ce_source, ce_id, where, ctx)


def _convert(fields: dict[str, Any], where: str, request: WebhookRequest) -> Event:
    tenant = fields.get("tenant")
    if tenant is None:
        fields["tenant"] = request.tenant
    elif tenant != request.tenant:
        raise InvalidPayload(f"{where}tenant: {shown(tenant)} does not match the authenticated tenant")
    occurred_at = fields.get("occurred_at")
    if occurred_at is not None:
        fields["occurred_at"] = parse_time(occurred_at, field=f"{where}occurred_at", now=request.received_at)
    try:
        event = msgspec.convert(fields, Event)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"{where}{validation_message(exc)}") from None
    if event.v != SCHEMA_VERSION:
        raise InvalidPayload(
            f"{where}v: schema version {event.v} is not supported (expected {SCHEMA_VERSION})"
        )
    return event


def _finish(event: Event, source: str, client_id: str, where: str, ctx: _Context) -> Event:
    # In place (the event was just made by _convert; a copy would cost more than the rest here).
    # msgspec.convert applied the model's field checks, and the id and channel set here are valid
    # by construction: unlike the other connectors (checks.checked), no round trip to re-check.
    event.id = event_id(NAME, ctx.request.tenant, source, client_id)
    event.channel = normalise_channel(event.channel)
    found = rule_problems(event) if ctx.nul_free else problems(event)
    if found:
        raise InvalidPayload(f"{where}{found[0]}")
    return event


connector: Final = GenericConnector()
