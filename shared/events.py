"""The canonical event model: one event is one thing that happened, at its own time.

Every connector maps vendor payloads onto :class:`Event`; the aggregator reads them back.
The wire format is JSON encoded by msgspec, versioned by ``v`` (see docs/events.md).
Fields are flat and optional per type rather than a tagged union so that the
aggregator can decode the few fields it needs from any event with one small struct.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

SCHEMA_VERSION: Final = 1


class EventType(enum.StrEnum):
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_ASSIGNED = "conversation.assigned"
    CONVERSATION_STATUS_CHANGED = "conversation.status_changed"
    CONVERSATION_LABELS_CHANGED = "conversation.labels_changed"
    MESSAGE_CREATED = "message.created"
    CALL_QUEUED = "call.queued"
    CALL_ANSWERED = "call.answered"
    CALL_ABANDONED = "call.abandoned"
    CALL_TIMED_OUT = "call.timed_out"
    CALL_TRANSFERRED = "call.transferred"
    CALL_ENDED = "call.ended"
    SURVEY_SUBMITTED = "survey.submitted"
    AGENT_STATUS_CHANGED = "agent.status_changed"


class Channel(enum.StrEnum):
    CHAT = "chat"
    EMAIL = "email"
    PHONE = "phone"
    WHATSAPP = "whatsapp"
    SOCIAL = "social"
    SMS = "sms"
    OTHER = "other"


class Status(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Author(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class Automation(enum.StrEnum):
    """Why an outbound message was sent by the system rather than typed by a person."""

    RULE = "rule"
    CAMPAIGN = "campaign"
    TEMPLATE = "template"
    SURVEY = "survey"


class SurveyKind(enum.StrEnum):
    CSAT = "csat"
    NPS = "nps"
    CES = "ces"


class AgentStatus(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    OFFLINE = "offline"


SURVEY_SCALES: Final[dict[str, tuple[int, int]]] = {
    SurveyKind.CSAT: (1, 5),
    SurveyKind.NPS: (0, 10),
    SurveyKind.CES: (1, 7),
}

# Bounds that keep a typo or an attack from poisoning a bucket; documented in docs/events.md.
MAX_ID_LEN: Final = 200
MAX_LABELS: Final = 50
MAX_LABEL_LEN: Final = 100
MAX_DURATION_SECONDS: Final = 30 * 24 * 3600.0

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LEN)]
OptId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LEN)] | None
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_SECONDS)] | None
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LABEL_LEN)]


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One canonical event. Optional fields belong to particular ``type`` values."""

    id: Id
    tenant: Id
    source: Id
    type: Id
    occurred_at: AwareDatetime
    conversation_id: Id
    channel: str = Channel.OTHER
    v: int = SCHEMA_VERSION
    # Who and where; any event may carry them, the latest known value wins.
    team: OptId = None
    queue: OptId = None
    agent: OptId = None
    customer: OptId = None
    labels: Annotated[list[Label], msgspec.Meta(max_length=MAX_LABELS)] | None = None
    priority: OptId = None
    # conversation.*
    status: str | None = None
    # message.created
    message_id: OptId = None
    direction: str | None = None
    author: str | None = None
    private: bool = False
    automated: str | None = None
    # call.*
    wait_seconds: Seconds = None
    talk_seconds: Seconds = None
    hold_seconds: Seconds = None
    wrap_seconds: Seconds = None
    # survey.submitted: one survey answered twice (rating, then comment) keeps one survey_id.
    survey: str | None = None
    survey_id: OptId = None
    score: int | None = None
    comment: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    # agent.status_changed
    agent_status: str | None = None
    # Vendor fields we do not model, passed through for later re-derivation.
    attributes: dict[str, Any] | None = None

    @property
    def key(self) -> bytes:
        """Kafka key: one conversation or call stays on one partition, in order."""
        return partition_key(self.tenant, self.conversation_id)


def partition_key(tenant: str, conversation_id: str) -> bytes:
    return f"{tenant}\x1f{conversation_id}".encode()


_REQUIRED_BY_TYPE: Final[dict[str, tuple[str, ...]]] = {
    EventType.CONVERSATION_STATUS_CHANGED: ("status",),
    EventType.CONVERSATION_LABELS_CHANGED: ("labels",),
    EventType.MESSAGE_CREATED: ("direction", "author"),
    EventType.SURVEY_SUBMITTED: ("survey", "score"),
    EventType.AGENT_STATUS_CHANGED: ("agent", "agent_status"),
}

_STATUSES: Final = frozenset(Status)
_DIRECTIONS: Final = frozenset(Direction)
_AUTHORS: Final = frozenset(Author)
_SURVEYS: Final = frozenset(SurveyKind)
_ENUMS: Final[dict[str, frozenset[str]]] = {
    "status": _STATUSES,
    "direction": _DIRECTIONS,
    "author": _AUTHORS,
    "survey": _SURVEYS,
}


def _score_fits(survey: str, score: int | None) -> bool:
    low, high = SURVEY_SCALES[survey]
    return score is None or low <= score <= high


# JSON can only carry NUL escaped (a raw control character in a string is malformed JSON), so
# a JSON text without this sequence has no NUL in any string: one search covers a whole body.
NUL_ESCAPE: Final = b"\\u0000"


def problems(event: Event, *, encoded: bytes | None = None) -> list[str]:
    """What makes ``event`` unusable for the KPIs, as ``field: reason`` strings.

    Unknown event types and unknown values of open enums (channel, automation, agent
    status) are *not* problems: vendors add values, and the aggregator counts and
    skips what it does not understand rather than make a sender disable its webhook.
    Values the KPIs depend on (status, direction, author, survey kind and score) must be
    known, because guessing them would count a message or a score wrongly.

    ``encoded``: the event's wire form, when the caller has it (saves encoding it again).
    """
    found: list[str] = []
    # Postgres text cannot store NUL: such an event would poison every flush. One search of the
    # encoded bytes is cheap; only a hit pays for finding the field.
    if NUL_ESCAPE in (encoder.encode(event) if encoded is None else encoded):
        for name in event.__struct_fields__:
            value = getattr(event, name)
            texts = value if name == "labels" and value else [value]
            if any(isinstance(text, str) and "\x00" in text for text in texts):
                found.append(f"{name}: contains a NUL character")
    found += rule_problems(event)
    return found


def rule_problems(event: Event) -> list[str]:
    """:func:`problems` without the NUL search, for callers that ruled NUL out on the whole body."""
    # The usual case first, in one expression (once per event of every batch); the loops below
    # only run to name what is wrong.
    required = _REQUIRED_BY_TYPE.get(event.type, ())
    if (
        (event.status is None or event.status in _STATUSES)
        and (event.direction is None or event.direction in _DIRECTIONS)
        and (event.author is None or event.author in _AUTHORS)
        and (event.survey is None or (event.survey in _SURVEYS and _score_fits(event.survey, event.score)))
    ):
        for name in required:
            if getattr(event, name) is None:
                break
        else:
            return []
    found: list[str] = []
    for name in _REQUIRED_BY_TYPE.get(event.type, ()):
        if getattr(event, name) is None:
            found.append(f"{name}: required for {event.type}")
    for name, allowed in _ENUMS.items():
        value = getattr(event, name)
        if value is not None and value not in allowed:
            found.append(f"{name}: {value!r} is not one of {sorted(allowed)}")
    if event.survey in SURVEY_SCALES and event.score is not None:
        low, high = SURVEY_SCALES[event.survey]
        if not low <= event.score <= high:
            found.append(f"score: {event.score} is outside {event.survey} scale {low}..{high}")
    return found


def normalise_channel(value: str | None) -> str:
    """Unknown channels are kept as ``other`` so a new vendor channel cannot add a label value."""
    return value if value in _CHANNELS else Channel.OTHER


_CHANNELS: Final = frozenset(Channel)

encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Event)
_batch_decoder: Final = msgspec.json.Decoder(list[Event])


def encode(event: Event) -> bytes:
    return encoder.encode(event)


def decode(data: bytes) -> Event:
    """Decode and validate one event (raises ``msgspec.ValidationError`` with the path)."""
    return _decoder.decode(data)


def decode_many(data: bytes) -> list[Event]:
    return _batch_decoder.decode(data)
