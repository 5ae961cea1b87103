"""Asterisk connector: queue_log lines posted as ``text/plain`` (one or many per request).

Follows the Asterisk "Queue Logs" documentation (docs.asterisk.org, Operation/Logging)
for line layout and event parameters; the realtime (database) variant's column layout
follows the same fields with a text time such as ``2012-07-03 15:27:23.896208``.

Line: ``time|callid|queuename|agent|event|data1|data2|...``. ``time`` is epoch seconds (file
variant) or a naive time in ``config.timezone`` (database variant). Durations are seconds
except RINGNOANSWER's ringtime (milliseconds, exposed as ``QueueLogLine.ring_seconds``).

Mapping (channel phone, ``queue`` = queuename unless ``NONE``, ``agent`` unless ``NONE``):

* ENTERQUEUE -> call.queued (customer = callerid, data2). This is the offer.
* CONNECT -> call.answered, wait_seconds = holdtime (data1).
* ABANDON -> call.abandoned, wait = waittime (data3).
* EXITWITHTIMEOUT -> call.timed_out (wait data3, reason timeout); EXITEMPTY -> call.timed_out
  (wait data3, reason exitempty: no members could take it); EXITWITHKEY -> call.timed_out
  (wait data4, reason key: the caller pressed a key to leave).
* COMPLETEAGENT / COMPLETECALLER -> call.ended, talk_seconds = calltime (data2); data1 is the
  queue hold already reported by CONNECT, not on-hold time.
* TRANSFER / BLINDTRANSFER (extension|context|holdtime|calltime) and ATTENDEDTRANSFER
  (method|method-data|holdtime|calltime) -> call.transferred, talk = calltime (data4). Asterisk
  writes no COMPLETE* line after a transfer: call.transferred ends the queue segment.
* AGENTLOGIN / AGENTCALLBACKLOGIN / ADDMEMBER / UNPAUSE -> agent.status_changed available;
  PAUSE -> away; AGENTLOGOFF / AGENTCALLBACKLOGOFF / REMOVEMEMBER -> offline; conversation
  ``asterisk:<source>:agent:<agent>``. PAUSEALL / UNPAUSEALL are ignored because Asterisk also
  writes the per-queue PAUSE / UNPAUSE lines.
* RINGNOANSWER is ignored (``ringnoanswer``): a member not picking up is not a call outcome.
  QUEUESTART, CONFIGRELOAD and call events with callid NONE are ignored.

Ids: ``source`` = ``asterisk:<source_name>``; ``conversation_id`` =
``asterisk:<source_name>:<callid>`` (uniqueids are only unique per PBX). The event id hashes
the normalised line, so a re-sent line dedupes. A malformed line rejects the whole request
(naming the line number), so a batch is never half-published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.ingest.connectors.base import InvalidPayload, Mapped, UnsupportedMediaType, WebhookRequest
from services.ingest.connectors.checks import checked
from services.ingest.connectors.ids import event_id, reason
from services.ingest.connectors.payload import shown
from services.ingest.connectors.timeparse import parse_time
from shared.events import MAX_DURATION_SECONDS, AgentStatus, Channel, Event, EventType

NAME: Final = "asterisk"
MIN_FIELDS: Final = 5

AGENT_EVENTS: Final[dict[str, AgentStatus]] = {
    "AGENTLOGIN": AgentStatus.AVAILABLE,
    "AGENTCALLBACKLOGIN": AgentStatus.AVAILABLE,
    "ADDMEMBER": AgentStatus.AVAILABLE,
    "UNPAUSE": AgentStatus.AVAILABLE,
    "PAUSE": AgentStatus.AWAY,
    "AGENTLOGOFF": AgentStatus.OFFLINE,
    "AGENTCALLBACKLOGOFF": AgentStatus.OFFLINE,
    "REMOVEMEMBER": AgentStatus.OFFLINE,
}
# event -> (canonical type, wait field, talk field, reason attribute); fields are 1-based data indexes.
CALL_EVENTS: Final[dict[str, tuple[str, int | None, int | None, str | None]]] = {
    "ENTERQUEUE": (EventType.CALL_QUEUED, None, None, None),
    "CONNECT": (EventType.CALL_ANSWERED, 1, None, None),
    "ABANDON": (EventType.CALL_ABANDONED, 3, None, None),
    "EXITWITHTIMEOUT": (EventType.CALL_TIMED_OUT, 3, None, "timeout"),
    "EXITEMPTY": (EventType.CALL_TIMED_OUT, 3, None, "exitempty"),
    "EXITWITHKEY": (EventType.CALL_TIMED_OUT, 4, None, "key"),
    "COMPLETEAGENT": (EventType.CALL_ENDED, None, 2, "agent"),
    "COMPLETECALLER": (EventType.CALL_ENDED, None, 2, "caller"),
    "TRANSFER": (EventType.CALL_TRANSFERRED, None, 4, "transfer"),
    "BLINDTRANSFER": (EventType.CALL_TRANSFERRED, None, 4, "blindtransfer"),
    "ATTENDEDTRANSFER": (EventType.CALL_TRANSFERRED, None, 4, "attendedtransfer"),
}
UNMAPPED_EVENTS: Final = frozenset(
    {
        "QUEUESTART", "CONFIGRELOAD", "RINGCANCELED", "AGENTDUMP", "PAUSEALL", "UNPAUSEALL",
        "SYSCOMPAT", "DID", "INFO", "PENALTY", "MEMBERCALLED", "REALTIME",
    }
)  # fmt: skip


class AsteriskConfig(BaseModel):
    # hide_input_in_errors: a misplaced secret must not be echoed in a start-up error.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # Checked by the HTTP layer (bearer token).
    token: SecretStr | None = None
    # Zone of the database variant's naive times; epoch lines do not need it.
    timezone: str = "UTC"
    source_name: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)


class QueueLogError(ValueError):
    """A queue_log line that cannot be parsed or mapped; the message names the field."""


@dataclass(frozen=True, slots=True)
class QueueLogLine:
    normalised: str
    time: datetime
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def datum(self, index: int) -> str:
        """data1..dataN (1-based); missing trailing fields read as empty."""
        return self.data[index - 1] if 0 < index <= len(self.data) else ""

    @property
    def ring_seconds(self) -> float | None:
        """RINGNOANSWER's ringtime, which Asterisk logs in milliseconds."""
        if self.event != "RINGNOANSWER":
            return None
        try:
            return int(self.datum(1)) / 1000
        except ValueError:
            return None


def parse_line(line: str, tz: tzinfo, *, now: datetime | None = None) -> QueueLogLine:
    """Parse one queue_log line (file or database variant) or raise :class:`QueueLogError`."""
    fields = [f.strip() for f in line.strip().split("|")]
    while len(fields) > MIN_FIELDS and not fields[-1]:
        fields.pop()  # the database variant pads data1..data5 with empty columns
    if len(fields) < MIN_FIELDS:
        raise QueueLogError(f"expected at least {MIN_FIELDS} '|'-separated fields, got {len(fields)}")
    try:
        when = parse_time(fields[0], field="time", tz=tz, now=now)
    except InvalidPayload as exc:
        raise QueueLogError(exc.detail) from None
    event = fields[4].upper()
    if not event:
        raise QueueLogError("event: empty")
    return QueueLogLine(
        normalised="|".join(fields),
        time=when,
        callid=fields[1],
        queue=fields[2],
        agent=fields[3],
        event=event,
        data=tuple(fields[5:]),
    )


def map_line(line: QueueLogLine, *, tenant: str, config: AsteriskConfig) -> Event | str:
    """The canonical event for ``line``, or the reason it is ignored; raises :class:`QueueLogError`."""
    source = f"{NAME}:{config.source_name}"
    base: dict[str, Any] = {
        "id": event_id(NAME, tenant, source, line.normalised),
        "tenant": tenant,
        "source": source,
        "occurred_at": line.time,
        "channel": Channel.PHONE,
        "queue": _present(line.queue),
    }
    status = AGENT_EVENTS.get(line.event)
    if status is not None:
        agent = _present(line.agent)
        if agent is None:
            raise QueueLogError(f"agent: required for {line.event}")
        event = Event(
            **base,
            type=EventType.AGENT_STATUS_CHANGED,
            conversation_id=f"{source}:agent:{agent}",
            agent=agent,
            agent_status=status,
        )
        return _checked(event)
    spec = CALL_EVENTS.get(line.event)
    if spec is None:
        if line.event == "RINGNOANSWER":
            return "ringnoanswer"
        return reason("ignored_event" if line.event in UNMAPPED_EVENTS else "unknown_event", line.event)
    callid = _present(line.callid)
    if callid is None:
        return "no_callid"
    type_, wait, talk, why = spec
    attributes: dict[str, Any] = {"reason": why} if why else {}
    if line.event == "EXITWITHKEY":
        attributes["key"] = line.datum(1)[:20]
    elif line.event in ("TRANSFER", "BLINDTRANSFER"):
        attributes["target"] = f"{line.datum(1)}@{line.datum(2)}"[:100]
    event = Event(
        **base,
        type=type_,
        conversation_id=f"{source}:{callid}",
        agent=_present(line.agent),
        customer=_present(line.datum(2)) if line.event == "ENTERQUEUE" else None,
        wait_seconds=None if wait is None else _seconds(line, wait),
        talk_seconds=None if talk is None else _seconds(line, talk),
        attributes=attributes or None,
    )
    return _checked(event)


def _present(value: str) -> str | None:
    return None if not value or value.upper() == "NONE" else value


def _seconds(line: QueueLogLine, index: int) -> float:
    raw = line.datum(index)
    try:
        value = float(raw)
    except ValueError:
        raise QueueLogError(f"data{index}: expected seconds for {line.event}, got {shown(raw)}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_DURATION_SECONDS:
        raise QueueLogError(f"data{index}: {raw} seconds is out of range")
    return value


def _checked(event: Event) -> Event:
    try:
        return checked(event)
    except InvalidPayload as exc:
        raise QueueLogError(exc.detail) from None


class AsteriskConnector:
    name: str = NAME

    def handle(self, request: WebhookRequest, config: object) -> Mapped:
        if not isinstance(config, AsteriskConfig):
            raise TypeError(f"asterisk connector needs AsteriskConfig, got {type(config).__name__}")
        if request.content_type != "text/plain":
            raise UnsupportedMediaType(
                f"content-type: {request.content_type or 'missing'!r} is not text/plain"
            )
        zone = config.zone
        mapped = Mapped()
        for number, raw in enumerate(request.body.split(b"\n"), start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidPayload(
                    f"line {number}: invalid UTF-8 at byte {exc.start}", reason="bad_encoding"
                ) from None
            if not text.strip():
                continue
            try:
                result = map_line(
                    parse_line(text, zone, now=request.received_at), tenant=request.tenant, config=config
                )
            except QueueLogError as exc:
                raise InvalidPayload(f"line {number}: {exc}") from None
            if isinstance(result, str):
                mapped.ignored.append(result)
            else:
                mapped.events.append(result)
        return mapped


connector: Final = AsteriskConnector()
