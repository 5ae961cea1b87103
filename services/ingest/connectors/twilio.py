"""Twilio connector: Voice status callbacks and TaskRouter workspace event callbacks.

Follows Twilio's "Webhooks security" (X-Twilio-Signature), Voice "status callback"
parameters, and the TaskRouter "Events reference" (event types and callback parameters).

Signature: base64 HMAC-SHA1(auth token, URL + each form parameter name+value, names sorted,
repeated names' values sorted). JSON bodies carry ``bodySHA256`` (hex SHA-256 of the raw
body) in the URL, checked here, and the signature covers the URL alone. The URL is tried
as received, and with the default port added or removed, because Twilio signs what was
configured. ``public_url`` replaces scheme, host and path when a proxy rewrites them; the
query string is taken as received. Form parameters must be decoded to verify (the scheme
signs decoded values), so bad UTF-8 is a 422 even before the signature is known good.
With ``account_sid`` configured, another AccountSid is refused (401).

Voice status callbacks (``CallSid`` + ``CallStatus``), channel phone: only ``completed``
-> call.ended with ``talk_seconds`` = CallDuration. Twilio answers an inbound call itself
(TwiML), so ``in-progress`` is not an agent answering and a plain voice call has no queue;
offers, answers and abandons come from TaskRouter. ``canceled`` / ``no-answer`` / ``busy`` /
``failed`` are outbound outcomes, ignored as ``call_status:<s>``. Child legs
(``ParentCallSid``) are ignored so a dialled agent leg does not end the call twice. Note
CallDuration spans the whole call, IVR and queue time included.

TaskRouter callbacks (``EventType``). The reference only says ``Timestamp`` is "the time
this event was sent", so epoch seconds, epoch milliseconds and ISO-8601 are all accepted
(``TimestampMs`` when ``Timestamp`` is absent).

* ``task-queue.entered`` is THE offer -> call.queued (``queue`` = TaskQueueName). It fires
  once per queue a task enters, so an escalated task is offered to each queue in turn;
  ``task.created`` is ignored so a task is not offered twice to its first queue.
* ``reservation.accepted`` -> call.answered, ``wait_seconds`` = TaskAge, agent = WorkerSid.
* ``task.canceled`` -> call.abandoned (wait = TaskAge), or call.timed_out when
  TaskCanceledReason speaks of a timeout / TTL; ``task-queue.timeout`` -> call.timed_out.
  A timeout's id is keyed on task + queue, so a queue timeout followed by a timeout
  cancellation in the same queue counts once.
* ``task.completed`` -> call.ended (talk / wrap / hold from the Flex Insights task attributes
  ``conversations.talk_time`` / ``wrap_up_time`` / ``hold_time`` when numeric; names taken
  from Flex Insights, not confirmed in the TaskRouter reference, so absent is normal);
  ``task.wrapup`` and other documented events are ignored.
* ``worker.activity.update`` -> agent.status_changed on ``twilio:worker:<WorkerSid>``:
  Available / Idle -> available, Offline -> offline, Break / Away / Lunch -> away, Busy /
  Unavailable -> busy; ``activity_map`` adds names; others are ignored as unknown.

Ids: ``conversation_id`` is ``twilio:<call_sid>`` when the task attributes carry
``call_sid`` (so voice and task events join on one call), else ``twilio:<TaskSid>``.
call.ended's event id is keyed on the conversation alone: a call ends once, so the voice
``completed`` callback and the task's ``task.completed`` dedupe to one event (first wins).
Channel from TaskChannelUniqueName: voice -> phone, chat, sms, email, whatsapp; else other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

import msgspec
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.ingest.connectors.base import (
    BadSignature,
    InvalidPayload,
    Mapped,
    UnsupportedMediaType,
    WebhookRequest,
)
from services.ingest.connectors.checks import checked
from services.ingest.connectors.ids import event_id, reason
from services.ingest.connectors.payload import decode_json, expect_object, shown
from services.ingest.connectors.timeparse import parse_time
from shared.events import MAX_DURATION_SECONDS, MAX_ID_LEN, AgentStatus, Channel, Event, EventType

NAME: Final = "twilio"
FORM: Final = "application/x-www-form-urlencoded"
JSON: Final = "application/json"
MAX_FIELDS: Final = 500
DEFAULT_PORTS: Final = {"https": 443, "http": 80}

TASK_CHANNELS: Final[dict[str, Channel]] = {
    "voice": Channel.PHONE,
    "chat": Channel.CHAT,
    "sms": Channel.SMS,
    "email": Channel.EMAIL,
    "whatsapp": Channel.WHATSAPP,
    "default": Channel.OTHER,
}
ACTIVITIES: Final[dict[str, AgentStatus]] = {
    "available": AgentStatus.AVAILABLE,
    "idle": AgentStatus.AVAILABLE,
    "offline": AgentStatus.OFFLINE,
    "break": AgentStatus.AWAY,
    "away": AgentStatus.AWAY,
    "lunch": AgentStatus.AWAY,
    "busy": AgentStatus.BUSY,
    "unavailable": AgentStatus.BUSY,
}
CALL_STATUSES: Final = frozenset(
    {"queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"}
)
# Documented TaskRouter events we deliberately do not map (ignored, not "unknown").
UNMAPPED_EVENTS: Final = frozenset(
    {
        "task.created", "task.updated", "task.wrapup", "task.deleted", "task.system-deleted",
        "task.transfer-initiated", "task.transfer-attempt-failed", "task.transfer-failed",
        "task.transfer-canceled", "task.transfer-completed",
        "reservation.created", "reservation.rejected", "reservation.timeout", "reservation.canceled",
        "reservation.rescinded", "reservation.completed", "reservation.wrapup", "reservation.failed",
        "task-queue.created", "task-queue.deleted", "task-queue.moved", "task-queue.expression.updated",
        "workflow.target-matched", "workflow.entered", "workflow.timeout", "workflow.skipped",
        "worker.created", "worker.deleted", "worker.attributes.update", "worker.capacity.update",
        "worker.channel.availability.update",
        "activity.created", "activity.updated", "activity.deleted",
        "task-channel.created", "task-channel.updated", "task-channel.deleted",
        "workspace.created", "workspace.updated", "workspace.deleted",
    }
)  # fmt: skip


class TwilioConfig(BaseModel):
    # hide_input_in_errors: a misplaced secret must not be echoed in a start-up error.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    auth_token: SecretStr
    account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    # The URL configured at Twilio when a proxy changes what this service sees.
    public_url: str | None = None
    # WorkerActivityName -> status for workspaces with their own activity names.
    activity_map: dict[str, AgentStatus] = Field(default_factory=dict)

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and (urlsplit(value).scheme not in DEFAULT_PORTS or not urlsplit(value).netloc):
            raise ValueError("public_url must be an absolute http(s) URL")
        return value


class TwilioConnector:
    name: str = NAME

    def handle(self, request: WebhookRequest, config: object) -> Mapped:
        if not isinstance(config, TwilioConfig):
            raise TypeError(f"twilio connector needs TwilioConfig, got {type(config).__name__}")
        content_type = request.content_type
        if content_type not in (FORM, JSON):
            raise UnsupportedMediaType(f"content-type: {content_type or 'missing'!r} is not {FORM} or {JSON}")
        signature = request.headers.get("x-twilio-signature", "").strip()
        if not signature:
            raise BadSignature("missing X-Twilio-Signature header", reason="missing_signature")
        url = signed_url(request.url, config.public_url)
        token = config.auth_token.get_secret_value().encode()
        if content_type == JSON:
            _check_body_hash(url, request.body)
            _check_signature(token, url, [], signature)
            params = _json_params(request.body)
        else:
            pairs = _form(request.body)
            _check_signature(token, url, pairs, signature)
            params = dict(pairs)
        account = params.get("AccountSid") or ""
        if not account:
            raise InvalidPayload("AccountSid: required")
        if config.account_sid is not None and not hmac.compare_digest(account, config.account_sid):
            raise BadSignature("AccountSid: does not match the configured account", reason="account_mismatch")
        ctx = _Context(request, config, params, f"{NAME}:{account}")
        if "EventType" in params:
            return ctx.taskrouter()
        if "CallSid" in params and "CallStatus" in params:
            return ctx.voice()
        return Mapped(ignored=["unknown_callback"])


def signature_for(token: bytes, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's scheme: URL, then name+value for each parameter sorted by name, then value."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(token, data.encode(), hashlib.sha1).digest()).decode()


def signed_url(received: str, public_url: str | None) -> str:
    if public_url is None:
        return received
    public, got = urlsplit(public_url), urlsplit(received)
    return urlunsplit((public.scheme, public.netloc, public.path, got.query or public.query, ""))


def url_variants(url: str) -> list[str]:
    """``url`` plus the same URL with its default port added or removed."""
    parts = urlsplit(url)
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None:
        return [url]
    if port is None:
        return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))]
    if port == default:
        return [url, urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]))]
    return [url]


def _check_signature(token: bytes, url: str, params: list[tuple[str, str]], signature: str) -> None:
    given = signature.encode()
    # Twilio's own validators drop exact duplicate name/value pairs; accept either reading.
    param_sets = [params] if len(set(params)) == len(params) else [params, sorted(set(params))]
    # Evaluate every variant so timing does not reveal which one matched.
    matches = [
        hmac.compare_digest(signature_for(token, u, p).encode(), given)
        for u in url_variants(url)
        for p in param_sets
    ]
    if not any(matches):
        raise BadSignature("X-Twilio-Signature does not match the URL and parameters")


def _check_body_hash(url: str, body: bytes) -> None:
    claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [""])[0].strip().lower()
    if not claimed:
        raise BadSignature(
            "bodySHA256 query parameter is required for JSON bodies", reason="missing_signature"
        )
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest().encode(), claimed.encode()):
        raise BadSignature("bodySHA256 does not match the body")


def _form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"body: invalid UTF-8 at byte {exc.start}", reason="bad_encoding") from None
    try:
        return parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=MAX_FIELDS
        )
    except UnicodeDecodeError:
        raise InvalidPayload(
            "body: percent-encoded bytes are not valid UTF-8", reason="bad_encoding"
        ) from None
    except ValueError:
        raise InvalidPayload(f"body: more than {MAX_FIELDS} form fields") from None


def _json_params(body: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in expect_object(decode_json(body), "").items():
        if value is None:
            continue
        if isinstance(value, str):
            params[key] = value
        elif isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            params[key] = str(value)
        else:  # nested objects arrive as JSON text in the form flavour (e.g. TaskAttributes)
            params[key] = msgspec.json.encode(value).decode()
    return params


class _Context:
    def __init__(
        self, request: WebhookRequest, config: TwilioConfig, params: dict[str, str], source: str
    ) -> None:
        self.request = request
        self.config = config
        self.params = params
        self.source = source

    def required(self, key: str) -> str:
        value = self.params.get(key, "").strip()
        if not value:
            raise InvalidPayload(f"{key}: required")
        return value

    def optional(self, key: str) -> str | None:
        return self.params.get(key, "").strip() or None

    def seconds(self, key: str) -> float | None:
        raw = self.optional(key)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise InvalidPayload(f"{key}: expected seconds, got {shown(raw)}") from None
        if not math.isfinite(value) or not 0 <= value <= MAX_DURATION_SECONDS:
            raise InvalidPayload(f"{key}: {raw} seconds is out of range")
        return value

    def json_object(self, key: str) -> dict[str, Any]:
        raw = self.optional(key)
        if raw is None:
            return {}
        try:
            value = msgspec.json.decode(raw)
        except msgspec.MsgspecError:
            raise InvalidPayload(f"{key}: invalid JSON") from None
        return expect_object(value, key)

    def time(self) -> datetime:
        raw = self.optional("Timestamp") or self.optional("TimestampMs")
        if raw is None:
            raise InvalidPayload("Timestamp: required")
        return parse_time(raw, field="Timestamp", now=self.request.received_at)

    def event(self, type_: str, key: tuple[str, ...], **fields: Any) -> Event:
        values: dict[str, Any] = {
            "id": event_id(NAME, self.request.tenant, self.source, type_, *key),
            "tenant": self.request.tenant,
            "source": self.source,
            "type": type_,
        }
        values.update(fields)
        return checked(Event(**values))

    def voice(self) -> Mapped:
        call_sid = self.required("CallSid")
        status = self.required("CallStatus").lower()
        if self.optional("ParentCallSid"):
            return Mapped(ignored=["child_call_leg"])
        if status != "completed":
            return Mapped(
                ignored=[reason("call_status" if status in CALL_STATUSES else "unknown_call_status", status)]
            )
        direction = self.optional("Direction")
        inbound = direction is None or direction.startswith("inbound")
        conversation_id = f"{NAME}:{call_sid}"
        ended = self.event(
            EventType.CALL_ENDED,
            (conversation_id,),
            occurred_at=self.time(),
            conversation_id=conversation_id,
            channel=Channel.PHONE,
            customer=self.optional("From" if inbound else "To"),
            talk_seconds=self.seconds("CallDuration"),
            attributes={"direction": direction} if direction else None,
        )
        return Mapped(events=[ended])

    def taskrouter(self) -> Mapped:
        event_type = self.required("EventType")
        if event_type == "worker.activity.update":
            return self.worker()
        handler = {
            "task-queue.entered": self.queued,
            "reservation.accepted": self.answered,
            "task.canceled": self.canceled,
            "task-queue.timeout": self.queue_timeout,
            "task.completed": self.completed,
        }.get(event_type)
        if handler is None:
            kind = "ignored_event" if event_type in UNMAPPED_EVENTS else "unknown_event"
            return Mapped(ignored=[reason(kind, event_type)])
        return Mapped(events=[handler()])

    def task_fields(self) -> dict[str, Any]:
        task_sid = self.required("TaskSid")
        attributes = self.json_object("TaskAttributes")
        call_sid = attributes.get("call_sid")
        customer = attributes.get("from") or attributes.get("caller")
        channel = self.optional("TaskChannelUniqueName")
        return {
            "occurred_at": self.time(),
            "conversation_id": f"{NAME}:{call_sid}"
            if isinstance(call_sid, str) and call_sid
            else f"{NAME}:{task_sid}",
            "channel": TASK_CHANNELS.get((channel or "").lower(), Channel.OTHER),
            "queue": self.optional("TaskQueueName"),
            # An address too long to be an id is dropped rather than failing the whole callback.
            "customer": customer if isinstance(customer, str) and 0 < len(customer) <= MAX_ID_LEN else None,
        }

    def queue_key(self) -> str:
        return self.optional("TaskQueueSid") or self.optional("TaskQueueName") or ""

    def queued(self) -> Event:
        return self.event(
            EventType.CALL_QUEUED, (self.required("TaskSid"), self.queue_key()), **self.task_fields()
        )

    def answered(self) -> Event:
        worker = self.required("WorkerSid")
        key = (self.optional("ReservationSid") or f"{self.required('TaskSid')}:{worker}",)
        return self.event(
            EventType.CALL_ANSWERED,
            key,
            agent=worker,
            wait_seconds=self.seconds("TaskAge"),
            **self.task_fields(),
        )

    def canceled(self) -> Event:
        why = self.optional("TaskCanceledReason")
        attributes = {"canceled_reason": why[:200]} if why else None
        if why and any(word in why.lower() for word in ("timeout", "timed out", "ttl")):
            return self.timed_out(attributes)
        return self.event(
            EventType.CALL_ABANDONED,
            (self.required("TaskSid"),),
            wait_seconds=self.seconds("TaskAge"),
            attributes=attributes,
            **self.task_fields(),
        )

    def queue_timeout(self) -> Event:
        return self.timed_out({"reason": "task-queue.timeout"})

    def timed_out(self, attributes: dict[str, Any] | None) -> Event:
        return self.event(
            EventType.CALL_TIMED_OUT,
            (self.required("TaskSid"), self.queue_key()),
            wait_seconds=self.seconds("TaskAge"),
            attributes=attributes,
            **self.task_fields(),
        )

    def completed(self) -> Event:
        fields = self.task_fields()
        measures = self.json_object("TaskAttributes").get("conversations")
        measures = measures if isinstance(measures, dict) else {}
        return self.event(
            EventType.CALL_ENDED,
            (fields["conversation_id"],),
            agent=self.optional("WorkerSid"),
            talk_seconds=_measure(measures, "talk_time"),
            wrap_seconds=_measure(measures, "wrap_up_time"),
            hold_seconds=_measure(measures, "hold_time"),
            **fields,
        )

    def worker(self) -> Mapped:
        worker = self.required("WorkerSid")
        activity = self.required("WorkerActivityName")
        self.json_object("WorkerAttributes")  # validated: a broken JSON string is the sender's bug
        status = self.config.activity_map.get(activity) or ACTIVITIES.get(activity.lower())
        if status is None:
            return Mapped(ignored=[reason("unknown_activity", activity)])
        timestamp = self.optional("Timestamp") or self.optional("TimestampMs") or ""
        key = (
            self.optional("Sid") or f"{worker}:{self.optional('WorkerActivitySid') or activity}:{timestamp}",
        )
        changed = self.event(
            EventType.AGENT_STATUS_CHANGED,
            key,
            occurred_at=self.time(),
            conversation_id=f"{NAME}:worker:{worker}",
            agent=worker,
            agent_status=status,
            attributes={"activity": activity[:100]},
        )
        return Mapped(events=[changed])


def _measure(measures: dict[str, Any], key: str) -> float | None:
    value = measures.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= MAX_DURATION_SECONDS else None


connector: Final = TwilioConnector()
