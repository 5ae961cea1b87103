"""Chatwoot account-webhook payloads and their signature.

Shapes follow Chatwoot's ``Conversations::EventDataPresenter#push_data`` (conversation
events) and ``Message#webhook_data`` (message events): no envelope, ``event`` merged in,
display ids as ``id``, epoch integers on conversations, ISO-8601 with milliseconds on
messages, ``updated_at`` as a float epoch. Times in the specs are offsets from the story's
start; :func:`payload` adds the story's wall-clock origin.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.simulator.roster import BOT_ID, BOT_NAME, Agent, Inbox, Team

ACCOUNT_NAME = "SupportPulse Demo"


@dataclass(frozen=True, slots=True)
class Sender:
    type: str  # contact | user | agent_bot
    id: int
    name: str

    @classmethod
    def user(cls, agent: Agent) -> Sender:
        return cls("user", agent.user_id, agent.name)

    @classmethod
    def bot(cls) -> Sender:
        return cls("agent_bot", BOT_ID, BOT_NAME)


@dataclass(frozen=True, slots=True)
class Conv:
    """The conversation as Chatwoot renders it at the moment of one event."""

    display_id: int
    inbox: Inbox
    contact: Sender
    created_at: float
    status: str = "open"
    assignee: Agent | None = None
    team: Team | None = None
    labels: tuple[str, ...] = ()
    priority: str | None = None
    # Offset of the oldest unanswered customer message, None when nobody waits.
    waiting_since: float | None = None
    last_activity_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    message_type: str  # incoming | outgoing | template
    content: str
    sender: Sender | None
    created_at: float
    private: bool = False
    content_type: str = "text"
    content_attributes: Mapping[str, Any] = field(default_factory=dict)
    additional_attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatwootEvent:
    event: str
    conv: Conv
    # When it happened (offset); conversation events use it as ``updated_at``.
    at: float
    message: Message | None = None
    # (attribute, previous, current) for conversation_status_changed / conversation_updated.
    changes: tuple[tuple[str, object, object], ...] = ()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event, "conversation": self.conv.display_id}
        if self.message is not None:
            out["message"] = self.message.id
        if self.changes:
            out["changes"] = {attr: current for attr, _, current in self.changes}
        return out


def iso_ms(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as Rails renders ``created_at`` in webhook_data."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _account(account_id: int) -> dict[str, Any]:
    return {"id": account_id, "name": ACCOUNT_NAME}


def _conversation(conv: Conv, origin: float, at: float, account_id: int) -> dict[str, Any]:
    assignee = conv.assignee
    team = conv.team
    return {
        "additional_attributes": {},
        "can_reply": True,
        "channel": conv.inbox.channel,
        "contact_inbox": {
            "contact_id": conv.contact.id,
            "inbox_id": conv.inbox.id,
            "source_id": f"sim-{conv.display_id}",
        },
        "id": conv.display_id,
        "account_id": account_id,
        "inbox_id": conv.inbox.id,
        "messages": [],
        "labels": list(conv.labels),
        "meta": {
            "sender": {"id": conv.contact.id, "name": conv.contact.name, "type": "contact"},
            "assignee": None
            if assignee is None
            else {
                "id": assignee.user_id,
                "name": assignee.name,
                "available_name": assignee.name,
                "type": "user",
            },
            "assignee_type": None if assignee is None else "User",
            "team": None if team is None else {"id": team.id, "name": team.name},
            "hmac_verified": False,
        },
        "status": conv.status,
        "priority": conv.priority,
        "unread_count": 1 if conv.waiting_since is not None else 0,
        "waiting_since": 0 if conv.waiting_since is None else int(origin + conv.waiting_since),
        "last_activity_at": int(origin + conv.last_activity_at),
        "timestamp": int(origin + conv.last_activity_at),
        "created_at": int(origin + conv.created_at),
        # Float epoch, as Chatwoot sends it: the connector keys status changes on it.
        "updated_at": round(origin + at, 6),
    }


def _message(msg: Message, origin: float, account_id: int, inbox: Inbox) -> dict[str, Any]:
    sender = msg.sender
    return {
        "account": _account(account_id),
        "additional_attributes": dict(msg.additional_attributes),
        "content_attributes": dict(msg.content_attributes),
        "content_type": msg.content_type,
        "content": msg.content,
        "created_at": iso_ms(origin + msg.created_at),
        "id": msg.id,
        "inbox": {"id": inbox.id, "name": inbox.name},
        "message_type": msg.message_type,
        "private": msg.private,
        "sender": None if sender is None else {"id": sender.id, "name": sender.name, "type": sender.type},
        "source_id": None,
    }


def payload(ev: ChatwootEvent, origin: float, account_id: int) -> dict[str, Any]:
    """The webhook body for ``ev`` in a story that started at ``origin`` (epoch seconds)."""
    conv = _conversation(ev.conv, origin, ev.at, account_id)
    if ev.message is None:
        body = {"event": ev.event, **conv}
        if ev.changes:
            body["changed_attributes"] = [
                {attr: {"previous_value": prev, "current_value": cur}} for attr, prev, cur in ev.changes
            ]
        return body
    return {
        "event": ev.event,
        **_message(ev.message, origin, account_id, ev.conv.inbox),
        "conversation": conv,
    }


def signature_headers(secret: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """``X-Chatwoot-Timestamp`` and ``X-Chatwoot-Signature`` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Chatwoot-Timestamp": str(timestamp), "X-Chatwoot-Signature": f"sha256={mac}"}
