"""Chatwoot connector: account / API-inbox / agent-bot webhooks.

Follows Chatwoot's webhook docs (chatwoot/docs ``webhook-events.md``) and its source:
``app/listeners/webhook_listener.rb`` (event names, ``changed_attributes``),
``Message#webhook_data`` and ``Conversations::EventDataPresenter#push_data`` (payload
shapes), ``Conversation#list_of_keys`` (what ``conversation_updated`` reports).

Signature: ``X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, ts + "." + raw body)>``
with ``X-Chatwoot-Timestamp``; more than ``max_skew_seconds`` from ``received_at`` is
stale. With no secret the request is refused unless ``unsigned=True`` is set explicitly
(older self-hosted installs do not sign); a configured secret is always enforced.

Mapping:

* ``conversation_created`` -> conversation.created (``status`` = initial status), plus
  conversation.status_changed ``pending`` when it starts pending (an agent bot has it).
* ``conversation_status_changed`` -> conversation.status_changed (new status from
  ``changed_attributes`` else the payload's ``status``); deprecated ``conversation_resolved``
  / ``conversation_opened`` -> the same with resolved / open. Legacy status ``bot`` = pending.
* ``conversation_updated`` -> conversation.assigned when assignee_id / team_id changed,
  conversation.labels_changed (full list) when label_list changed, else ignored
  ``no_kpi_change`` (status changes arrive as conversation_status_changed).
* ``message_created`` -> message.created; activity messages are ignored. Direction:
  incoming -> inbound, outgoing / template -> outbound. Author by ``sender.type``: contact ->
  customer, user -> agent, agent_bot / captain_assistant -> bot, no sender -> system.
  ``automated``: input_csat -> survey, automation_rule_id -> rule, campaign_id -> campaign,
  template -> template.
* ``message_updated`` carrying ``submitted_values.csat_survey_response`` -> survey.submitted
  (csat, 1..5); ``survey_id`` is the survey message, so a rating then a comment share it.
  The payload has no answer time: ``conversation.updated_at`` (touched by the update) is
  used, else ``received_at``. Other updates are ignored.
* Contacts, typing, inboxes, webwidget_triggered: ignored ``ignored_event:<name>``; unknown
  events ``unknown_event:<name>``.

Channels: WebWidget -> chat, Api -> chat (API inboxes are custom chat front-ends in
practice), Email -> email, Whatsapp -> whatsapp, TwilioSms -> sms (whatsapp when the contact
source id is ``whatsapp:...``, Twilio's WhatsApp addressing), Sms -> sms, Facebook /
Instagram / Twitter / Telegram / Line / Tiktok -> social, Voice -> phone, else other;
``channel_map`` overrides per class name.

Ids: ``conversation_id`` = ``chatwoot:<account>:<display id>`` (display ids are per account).
Event ids hash the happening: message id for message.created and the display id for
conversation.created (each happens once, so copies from several webhooks dedupe); the
conversation's float ``updated_at`` for status / assignment / label changes (so
conversation_resolved and conversation_status_changed for one save dedupe); otherwise
``X-Chatwoot-Delivery`` (fixed across retries) or, without it, a hash of the body.
The account comes from ``account.id``, ``account_id`` or ``messages[].account_id``;
conversation payloads without messages carry none, hence the ``account_id`` config fallback.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.ingest.connectors.base import (
    BadSignature,
    InvalidPayload,
    Mapped,
    StaleRequest,
    UnsupportedMediaType,
    WebhookRequest,
)
from services.ingest.connectors.chatwoot_payload import (
    STATUSES,
    Conversation,
    account_id,
    changed_attributes,
    conversation,
    object_or_json,
)
from services.ingest.connectors.checks import checked
from services.ingest.connectors.ids import body_digest, event_id, reason
from services.ingest.connectors.payload import (
    JsonObject,
    decode_json,
    expect_object,
    opt_bool,
    opt_id,
    opt_int,
    opt_object,
    opt_str,
    req_id,
    req_str,
)
from services.ingest.connectors.timeparse import parse_time
from shared.events import Author, Automation, Channel, Direction, Event, EventType, Status, SurveyKind

NAME: Final = "chatwoot"
MAX_COMMENT: Final = 4000

SENDER_AUTHORS: Final[dict[str, Author]] = {
    "contact": Author.CUSTOMER,
    "user": Author.AGENT,
    "agent_bot": Author.BOT,
    "captain_assistant": Author.BOT,
}
# message_type is a string in webhook_data, an integer inside conversation.messages[].
MESSAGE_TYPES: Final[dict[object, str]] = {
    0: "incoming", 1: "outgoing", 2: "activity", 3: "template",
    "incoming": "incoming", "outgoing": "outgoing", "activity": "activity", "template": "template",
}  # fmt: skip
IGNORED_EVENTS: Final = frozenset(
    {
        "webwidget_triggered",
        "contact_created",
        "contact_updated",
        "contact_deleted",
        "conversation_typing_on",
        "conversation_typing_off",
        "inbox_created",
        "inbox_updated",
    }
)


class ChatwootConfig(BaseModel):
    # hide_input_in_errors: a misplaced secret must not be echoed in a start-up error.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    secret: SecretStr | None = None
    # Explicit opt-in for installs that do not sign; ignored when a secret is set.
    unsigned: bool = False
    max_skew_seconds: int = Field(default=300, ge=1, le=3600)
    # Used when a conversation payload carries no account id (no messages yet).
    account_id: int | None = Field(default=None, ge=1)
    # Chatwoot channel class name -> canonical channel, over the built-in table.
    channel_map: dict[str, Channel] = Field(default_factory=dict)


@dataclass(slots=True)
class _Context:
    request: WebhookRequest
    body: JsonObject
    source: str
    # The delivery discriminator for happenings without a natural key.
    delivery: str
    ignored: list[str] = field(default_factory=list)

    def time(self, value: object, name: str) -> datetime:
        return parse_time(value, field=name, now=self.request.received_at)

    def event(
        self, conv: Conversation, type_: str, at: datetime, key: tuple[str, ...], **fields: Any
    ) -> Event:
        values: dict[str, Any] = {
            "id": event_id(NAME, self.request.tenant, self.source, type_, *key),
            "tenant": self.request.tenant,
            "source": self.source,
            "type": type_,
            "occurred_at": at,
            "conversation_id": conv.conversation_id,
            "channel": conv.channel,
            "team": conv.team,
            "agent": conv.agent,
            "customer": conv.customer,
            "labels": conv.labels,
            "priority": conv.priority,
        }
        values.update(fields)
        return checked(Event(**values))


class ChatwootConnector:
    name: str = NAME

    def handle(self, request: WebhookRequest, config: object) -> Mapped:
        if not isinstance(config, ChatwootConfig):
            raise TypeError(f"chatwoot connector needs ChatwootConfig, got {type(config).__name__}")
        _verify(request, config)
        if request.content_type != "application/json":
            raise UnsupportedMediaType(
                f"content-type: {request.content_type or 'missing'!r} is not application/json"
            )
        body = expect_object(decode_json(request.body), "")
        name = req_str(body, "event", "")
        handler = _HANDLERS.get(name)
        if handler is None:
            kind = "ignored_event" if name in IGNORED_EVENTS else "unknown_event"
            return Mapped(ignored=[reason(kind, name)])
        delivery = request.headers.get("x-chatwoot-delivery") or f"body:{body_digest(request.body)}"
        ctx = _Context(request, body, f"{NAME}:{account_id(body, config.account_id)}", delivery)
        events = handler(ctx, config)
        return Mapped(events=events, ignored=ctx.ignored)


def _verify(request: WebhookRequest, config: ChatwootConfig) -> None:
    if config.secret is None:
        if config.unsigned:
            return
        raise BadSignature("no webhook secret configured", reason="no_secret")
    timestamp = request.headers.get("x-chatwoot-timestamp", "").strip()
    signature = request.headers.get("x-chatwoot-signature", "").strip()
    if not timestamp or not signature:
        raise BadSignature(
            "missing X-Chatwoot-Timestamp or X-Chatwoot-Signature header", reason="missing_signature"
        )
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise BadSignature("X-Chatwoot-Timestamp: not a unix timestamp", reason="bad_timestamp")
    key = config.secret.get_secret_value().encode()
    mac = hmac.new(key, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"sha256={mac}".encode(), signature.lower().encode()):
        raise BadSignature("X-Chatwoot-Signature does not match the body")
    skew = abs(request.received_at.timestamp() - int(timestamp))
    if skew > config.max_skew_seconds:
        raise StaleRequest(
            f"X-Chatwoot-Timestamp is {int(skew)}s from now (limit {config.max_skew_seconds}s)"
        )


def _changed_at(ctx: _Context, conv: Conversation) -> tuple[datetime, str]:
    """When a conversation change happened, and the key that identifies it."""
    if conv.updated_at is not None:
        return ctx.time(conv.updated_at, "updated_at"), f"at:{conv.updated_at}"
    if conv.timestamp is not None:
        return ctx.time(conv.timestamp, "timestamp"), ctx.delivery
    raise InvalidPayload("updated_at: required (or timestamp)")


def _conversation_created(ctx: _Context, config: ChatwootConfig) -> list[Event]:
    conv = conversation(ctx.body, "", ctx.source, config.channel_map)
    raw_time = conv.created_at if conv.created_at is not None else conv.timestamp
    if raw_time is None:
        raise InvalidPayload("created_at: required")
    at = ctx.time(raw_time, "created_at" if conv.created_at is not None else "timestamp")
    status = STATUSES.get(conv.status or "")
    created = ctx.event(conv, EventType.CONVERSATION_CREATED, at, (conv.display_id,), status=status)
    if status is not Status.PENDING:
        return [created]
    bot_start = ctx.event(
        conv, EventType.CONVERSATION_STATUS_CHANGED, at, (conv.display_id, "initial"), status=status
    )
    return [created, bot_start]


def _status_changed(ctx: _Context, config: ChatwootConfig) -> list[Event]:
    conv = conversation(ctx.body, "", ctx.source, config.channel_map)
    name = ctx.body["event"]
    change = changed_attributes(ctx.body).get("status")
    implied = {"conversation_resolved": "resolved", "conversation_opened": "open"}.get(name)
    raw = implied or (change[1] if change is not None and change[1] is not None else conv.status)
    status = STATUSES.get(raw) if isinstance(raw, str) else None
    if status is None:
        ctx.ignored.append(reason("unknown_status", raw))
        return []
    at, key = _changed_at(ctx, conv)
    previous = change[0] if change is not None else None
    attributes = {"previous_status": previous[:50]} if isinstance(previous, str) else None
    return [
        ctx.event(
            conv, EventType.CONVERSATION_STATUS_CHANGED, at, (conv.display_id, status, key),
            status=status, attributes=attributes,
        )
    ]  # fmt: skip


def _conversation_updated(ctx: _Context, config: ChatwootConfig) -> list[Event]:
    conv = conversation(ctx.body, "", ctx.source, config.channel_map)
    changes = changed_attributes(ctx.body)
    events: list[Event] = []
    if "assignee_id" in changes or "team_id" in changes:
        agent = conv.agent or _id_value(changes.get("assignee_id"))
        team = conv.team or _id_value(changes.get("team_id"))
        if agent is None and team is None:
            ctx.ignored.append("unassigned")
        else:
            at, key = _changed_at(ctx, conv)
            events.append(
                ctx.event(
                    conv, EventType.CONVERSATION_ASSIGNED, at, (conv.display_id, key), agent=agent, team=team
                )
            )
    if "label_list" in changes:
        labels = conv.labels if conv.labels is not None else _label_value(changes["label_list"][1])
        at, key = _changed_at(ctx, conv)
        events.append(
            ctx.event(conv, EventType.CONVERSATION_LABELS_CHANGED, at, (conv.display_id, key), labels=labels)
        )
    if not events and not ctx.ignored:
        ctx.ignored.append("no_kpi_change")
    return events


def _id_value(change: tuple[object, object] | None) -> str | None:
    current = None if change is None else change[1]
    return str(current) if isinstance(current, int | str) and not isinstance(current, bool) else None


def _label_value(current: object) -> list[str]:
    if isinstance(current, list) and all(isinstance(x, str) for x in current):
        return current
    if isinstance(current, str):  # acts_as_taggable sometimes reports the comma-joined list
        return [x.strip() for x in current.split(",") if x.strip()]
    raise InvalidPayload("labels: required for a label_list change")


def _nested_conversation(ctx: _Context, config: ChatwootConfig) -> Conversation:
    nested = expect_object(ctx.body.get("conversation"), "conversation")
    return conversation(nested, "conversation", ctx.source, config.channel_map)


def _message_created(ctx: _Context, config: ChatwootConfig) -> list[Event]:
    body = ctx.body
    conv = _nested_conversation(ctx, config)
    message_id = req_id(body, "id", "")
    raw_type = body.get("message_type")
    message_type = MESSAGE_TYPES.get(raw_type) if isinstance(raw_type, str | int) else None
    if message_type is None:
        ctx.ignored.append(reason("unknown_message_type", raw_type))
        return []
    if message_type == "activity":
        ctx.ignored.append("activity_message")
        return []
    direction = Direction.INBOUND if message_type == "incoming" else Direction.OUTBOUND
    sender = opt_object(body, "sender", "")
    author = _author(sender, direction)
    if author is None:
        ctx.ignored.append(reason("unknown_sender", opt_str(sender or {}, "type", "sender")))
        return []
    content_attributes = object_or_json(body, "content_attributes")
    additional = object_or_json(body, "additional_attributes")
    content_type = opt_str(body, "content_type", "")
    if content_type == "input_csat":
        automated: str | None = Automation.SURVEY
    elif content_attributes.get("automation_rule_id") is not None:
        automated = Automation.RULE
    elif additional.get("campaign_id") is not None:
        automated = Automation.CAMPAIGN
    elif message_type == "template":
        automated = Automation.TEMPLATE
    else:
        automated = None
    sender_id = None if sender is None else opt_id(sender, "id", "sender")
    return [
        ctx.event(
            conv,
            EventType.MESSAGE_CREATED,
            ctx.time(body.get("created_at"), "created_at"),
            (message_id,),
            message_id=f"{ctx.source}:msg:{message_id}",
            direction=direction,
            author=author,
            private=bool(opt_bool(body, "private", "")),
            automated=automated,
            agent=sender_id if author is Author.AGENT else conv.agent,
        )
    ]


def _author(sender: JsonObject | None, direction: Direction) -> Author | None:
    if sender is None:
        return Author.SYSTEM
    kind = opt_str(sender, "type", "sender")
    if kind is None:  # Chatwoot < 2 sent no type: contacts write in, users write out.
        return Author.CUSTOMER if direction is Direction.INBOUND else Author.AGENT
    return SENDER_AUTHORS.get(kind)


def _message_updated(ctx: _Context, config: ChatwootConfig) -> list[Event]:
    body = ctx.body
    submitted = object_or_json(body, "content_attributes").get("submitted_values")
    response = submitted.get("csat_survey_response") if isinstance(submitted, dict) else None
    if response is None:
        ctx.ignored.append("no_kpi_change")
        return []
    path = "content_attributes.submitted_values.csat_survey_response"
    response = expect_object(response, path)
    rating = opt_int(response, "rating", path)
    if rating is None:
        raise InvalidPayload(f"{path}.rating: required")
    if not 1 <= rating <= 5:
        raise InvalidPayload(f"{path}.rating: {rating} is outside the CSAT scale 1..5")
    comment = (opt_str(response, "feedback_message", path) or "").strip()[:MAX_COMMENT] or None
    conv = _nested_conversation(ctx, config)
    message_id = req_id(body, "id", "")
    at = (
        ctx.time(conv.updated_at, "conversation.updated_at")
        if conv.updated_at is not None
        else ctx.request.received_at
    )
    return [
        ctx.event(
            conv,
            EventType.SURVEY_SUBMITTED,
            at,
            (message_id, ctx.delivery),
            survey=SurveyKind.CSAT,
            survey_id=f"{ctx.source}:msg:{message_id}",
            score=rating,
            comment=comment,
        )
    ]


_HANDLERS: Final = {
    "conversation_created": _conversation_created,
    "conversation_status_changed": _status_changed,
    "conversation_resolved": _status_changed,
    "conversation_opened": _status_changed,
    "conversation_updated": _conversation_updated,
    "message_created": _message_created,
    "message_updated": _message_updated,
}

connector: Final = ChatwootConnector()
