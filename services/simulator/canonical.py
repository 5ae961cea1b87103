"""Canonical mode: a story's deliveries as canonical events for ``POST /v1/events``.

In vendor mode the simulator cannot know the canonical events the ingest connectors make
of its webhooks (it imports no other service), so it cannot record them. In canonical
mode it writes them itself, from what it knows of each vendor event, and sends them to
the generic endpoint: what it records is then exactly what Kafka gets, which is what the
reference computation (``reference.py``) needs.

The translation follows the connectors' documented mappings (each connector module's
docstring): the same event types per delivery as the story's ``expect`` (tests check it),
the same facts (who wrote, automated or not, waits, talk/hold/wrap), the same channel.
Two of the connectors' id rules matter for the KPIs and are kept: a Twilio call ends once
(both legs of a transferred call end with one event id, so the second is a duplicate),
and a CSAT survey keeps its id across a rating and a comment.

Ids: ``sim:<run>:<kind>:<story>:<delivery>:<n>`` (``source`` ``simulator``), unique across runs
because the run id leads; ingest turns them into ``generic:<hash>`` and says so in its 202.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

from services.simulator.story import Delivery, Story
from services.simulator.vendors.asterisk import QueueLogLine
from services.simulator.vendors.chatwoot import ChatwootEvent, Message
from services.simulator.vendors.twilio import TaskEvent, WorkerEvent
from services.simulator.wire import Credentials, Prepared
from shared.events import Event, EventType, encode

SOURCE: Final = "simulator"

_INBOX_CHANNELS: Final = {
    "Channel::WebWidget": "chat",
    "Channel::Email": "email",
    "Channel::Whatsapp": "whatsapp",
}
_TWILIO_ACTIVITIES: Final = {"Available": "available", "Offline": "offline", "Break": "away"}
_ASTERISK_PRESENCE: Final = {"ADDMEMBER": "available", "UNPAUSE": "available", "PAUSE": "away"}

Fields = dict[str, Any]


def conversation_id(story: Story, delivery: Delivery) -> str:
    """Where a delivery's events belong, namespaced like the connectors' ids."""
    ev = delivery.event
    if isinstance(ev, ChatwootEvent):
        return f"sim:chat:{ev.conv.display_id}"
    if isinstance(ev, TaskEvent):
        return f"sim:twilio:{ev.call_sid}"
    if isinstance(ev, WorkerEvent):
        return f"sim:agent:{ev.worker.name}"
    if ev.callid == "NONE":
        return f"sim:agent:{ev.agent}"
    return f"sim:asterisk:{ev.callid}"


def events_of(story: Story, index: int, origin: float, tenant: str, run_id: int) -> list[Event]:
    """The canonical events of ``story.deliveries[index]`` in a story that started at ``origin``."""
    delivery = story.deliveries[index]
    # Millisecond times, as the vendors send them: the recorded JSON round-trips exactly.
    occurred_at = datetime.fromtimestamp(round(origin + delivery.offset, 3), UTC)
    base: Fields = {
        "tenant": tenant,
        "source": SOURCE,
        "occurred_at": occurred_at,
        "conversation_id": conversation_id(story, delivery),
    }
    out = []
    for n, fields in enumerate(_translate(delivery)):
        # Breaks and the opening are numbered apart from conversations: the kind keeps ids apart.
        event_id = fields.pop("id", None) or f"sim:{run_id}:{story.kind}:{story.number}:{index}:{n}"
        if not str(event_id).startswith("sim:"):
            event_id = f"sim:{run_id}:{event_id}"
        out.append(Event(id=event_id, **base, **fields))
    return out


def prepare_events(events: list[Event], connector: str, base_url: str, creds: Credentials) -> Prepared:
    """The ``POST /v1/events`` request carrying ``events`` (``connector``: the story's vendor)."""
    if not creds.canonical or creds.ingest_token is None:
        raise ValueError(f"tenant {creds.tenant!r} has no generic connector with an ingest_token")
    body = b"[" + b",".join(encode(e) for e in events) + b"]"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {creds.ingest_token}"}
    summary = {"conversation": events[0].conversation_id, "types": [e.type for e in events]}
    return Prepared(
        connector, f"{base_url.rstrip('/')}/v1/events", body, headers, summary, events=tuple(events)
    )


def _translate(delivery: Delivery) -> Iterator[Fields]:
    ev = delivery.event
    if isinstance(ev, ChatwootEvent):
        yield from _chatwoot(ev)
    elif isinstance(ev, TaskEvent):
        yield from _twilio_task(ev)
    elif isinstance(ev, WorkerEvent):
        status = _TWILIO_ACTIVITIES.get(ev.activity)
        if status is not None:
            yield {"type": EventType.AGENT_STATUS_CHANGED, "agent": ev.worker.name, "agent_status": status}
    else:
        yield from _asterisk(ev)


# Chatwoot ---------------------------------------------------------------------------------


def _chatwoot(ev: ChatwootEvent) -> Iterator[Fields]:
    conv = ev.conv
    who: Fields = {"channel": _INBOX_CHANNELS.get(conv.inbox.channel, "other"), "customer": conv.contact.name}
    if conv.team is not None:
        who["team"] = conv.team.name
    if conv.assignee is not None:
        who["agent"] = conv.assignee.name
    if conv.priority is not None:
        who["priority"] = conv.priority
    changed = {attr for attr, _, _ in ev.changes}
    if ev.event == "conversation_created":
        yield {"type": EventType.CONVERSATION_CREATED, "status": conv.status, **who}
        if conv.status == "pending":
            yield {"type": EventType.CONVERSATION_STATUS_CHANGED, "status": "pending", **who}
    elif ev.event == "conversation_status_changed":
        yield {"type": EventType.CONVERSATION_STATUS_CHANGED, "status": conv.status, **who}
    elif ev.event == "conversation_updated":
        if changed & {"assignee_id", "team_id"}:
            yield {"type": EventType.CONVERSATION_ASSIGNED, **who}
        if "label_list" in changed:
            yield {"type": EventType.CONVERSATION_LABELS_CHANGED, "labels": list(conv.labels), **who}
    elif ev.event == "message_created" and ev.message is not None:
        # For a message, ``agent`` is its author (docs/events.md), not the assignee.
        where = {k: v for k, v in who.items() if k != "agent"}
        yield {"type": EventType.MESSAGE_CREATED, **_message(ev.message), **where, **_author(ev.message)}
    elif ev.event == "message_updated" and ev.message is not None:
        answer = ev.message.content_attributes.get("submitted_values", {}).get("csat_survey_response")
        if answer is not None:
            yield {
                "type": EventType.SURVEY_SUBMITTED,
                "survey": "csat",
                "score": int(answer["rating"]),
                "comment": answer.get("feedback_message") or None,
                # One survey message, answered once or twice: the latest answer counts.
                "survey_id": f"chat:{ev.message.id}",
                **who,
            }


def _message(msg: Message) -> Fields:
    automated = None
    if msg.content_type == "input_csat":
        automated = "survey"
    elif "automation_rule_id" in msg.content_attributes:
        automated = "rule"
    elif "campaign_id" in msg.additional_attributes:
        automated = "campaign"
    elif msg.message_type == "template":
        automated = "template"
    return {
        "message_id": str(msg.id),
        "direction": "inbound" if msg.message_type == "incoming" else "outbound",
        "private": msg.private,
        "automated": automated,
    }


def _author(msg: Message) -> Fields:
    sender = msg.sender
    if sender is None:
        return {"author": "system"}
    if sender.type == "contact":
        return {"author": "customer"}
    if sender.type == "agent_bot":
        return {"author": "bot"}
    return {"author": "agent", "agent": sender.name}


# Twilio TaskRouter ------------------------------------------------------------------------


def _twilio_task(ev: TaskEvent) -> Iterator[Fields]:
    who: Fields = {"channel": "phone", "queue": ev.team.name, "customer": ev.caller}
    if ev.event_type == "task-queue.entered":
        yield {"type": EventType.CALL_QUEUED, **who}
    elif ev.event_type == "reservation.accepted" and ev.worker is not None:
        yield {"type": EventType.CALL_ANSWERED, "agent": ev.worker.name, "wait_seconds": float(ev.age), **who}
    elif ev.event_type == "task.canceled":
        timed_out = "TTL" in (ev.canceled_reason or "") or "timeout" in (ev.canceled_reason or "").lower()
        kind = EventType.CALL_TIMED_OUT if timed_out else EventType.CALL_ABANDONED
        yield {"type": kind, "wait_seconds": float(ev.age), **who}
    elif ev.event_type == "task.completed":
        m = ev.measures
        times = {} if m is None else {"talk_seconds": m.talk, "hold_seconds": m.hold, "wrap_seconds": m.wrap}
        agent = {} if ev.worker is None else {"agent": ev.worker.name}
        # A call ends once: the legs of a transferred call share this id, so the second dedupes.
        yield {"type": EventType.CALL_ENDED, "id": f"twilio:{ev.call_sid}:ended", **who, **agent, **times}


# Asterisk queue_log -----------------------------------------------------------------------


def _asterisk(ev: QueueLogLine) -> Iterator[Fields]:
    if ev.callid == "NONE":
        status = _ASTERISK_PRESENCE.get(ev.event)
        if status is not None:
            yield {"type": EventType.AGENT_STATUS_CHANGED, "agent": ev.agent, "agent_status": status}
        return
    who: Fields = {"channel": "phone", "queue": ev.queue}
    if ev.agent != "NONE":
        who["agent"] = ev.agent
    data = ev.data
    if ev.event == "ENTERQUEUE":
        yield {"type": EventType.CALL_QUEUED, "customer": data[1], **who}
    elif ev.event == "CONNECT":
        yield {"type": EventType.CALL_ANSWERED, "wait_seconds": float(data[0]), **who}
    elif ev.event == "ABANDON":
        yield {"type": EventType.CALL_ABANDONED, "wait_seconds": float(data[2]), **who}
    elif ev.event == "EXITWITHTIMEOUT":
        yield {"type": EventType.CALL_TIMED_OUT, "wait_seconds": float(data[2]), **who}
    elif ev.event in ("COMPLETEAGENT", "COMPLETECALLER"):
        yield {"type": EventType.CALL_ENDED, "talk_seconds": float(data[1]), **who}
    elif ev.event == "TRANSFER":
        yield {"type": EventType.CALL_TRANSFERRED, "talk_seconds": float(data[3]), **who}
