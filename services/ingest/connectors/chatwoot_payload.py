"""Reading Chatwoot's payload shapes: the conversation snapshot, account, changes.

Shapes follow ``Conversations::EventDataPresenter#push_data`` (conversation events and the
``conversation`` inside message events) and ``WebhookListener`` (``changed_attributes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from services.ingest.connectors.base import InvalidPayload
from services.ingest.connectors.payload import (
    JsonObject,
    expect_object,
    join,
    opt_id,
    opt_list,
    opt_object,
    opt_str,
    req_id,
    shown,
)
from shared.events import Channel, Status

CHANNELS: Final[dict[str, Channel]] = {
    "Channel::WebWidget": Channel.CHAT,
    "Channel::Api": Channel.CHAT,
    "Channel::Email": Channel.EMAIL,
    "Channel::Whatsapp": Channel.WHATSAPP,
    "Channel::TwilioSms": Channel.SMS,
    "Channel::Sms": Channel.SMS,
    "Channel::FacebookPage": Channel.SOCIAL,
    "Channel::Instagram": Channel.SOCIAL,
    "Channel::TwitterProfile": Channel.SOCIAL,
    "Channel::Telegram": Channel.SOCIAL,
    "Channel::Line": Channel.SOCIAL,
    "Channel::Tiktok": Channel.SOCIAL,
    "Channel::Voice": Channel.PHONE,
}
STATUSES: Final[dict[str, Status]] = {
    "open": Status.OPEN,
    "resolved": Status.RESOLVED,
    "pending": Status.PENDING,
    "snoozed": Status.SNOOZED,
    "bot": Status.PENDING,  # Chatwoot < 1.x name for "an agent bot has it"
}


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    display_id: str
    channel: str
    status: str | None
    team: str | None
    agent: str | None
    customer: str | None
    labels: list[str] | None
    priority: str | None
    updated_at: object
    timestamp: object
    created_at: object


def account_id(body: JsonObject, configured_id: int | None) -> str:
    """From ``account.id``, ``account_id`` or ``messages[].account_id``, else the configured one."""
    account = opt_object(body, "account", "")
    found = req_id(account, "id", "account") if account is not None else opt_id(body, "account_id", "")
    if found is None:  # conversation payloads: the account sits on each message
        for i, message in enumerate(opt_list(body, "messages", "") or []):
            path = f"messages[{i}]"
            found = opt_id(expect_object(message, path), "account_id", path)
            if found is not None:
                break
    configured = None if configured_id is None else str(configured_id)
    if found is None:
        if configured is None:
            raise InvalidPayload("account.id: missing from the payload and no account_id is configured")
        return configured
    if configured is not None and found != configured:
        raise InvalidPayload(f"account.id: {found} does not match the configured account {configured}")
    return found


def conversation(conv: JsonObject, path: str, source: str, channel_map: Mapping[str, str]) -> Conversation:
    display_id = req_id(conv, "id", path)
    meta = opt_object(conv, "meta", path) or {}
    meta_path = join(path, "meta")
    assignee = opt_object(meta, "assignee", meta_path)
    team = opt_object(meta, "team", meta_path)
    sender = opt_object(meta, "sender", meta_path)
    labels = opt_list(conv, "labels", path)
    if labels is not None and not all(isinstance(x, str) for x in labels):
        raise InvalidPayload(f"{join(path, 'labels')}: expected an array of strings")
    contact_inbox = opt_object(conv, "contact_inbox", path) or {}
    return Conversation(
        conversation_id=f"{source}:{display_id}",
        display_id=display_id,
        channel=_channel(opt_str(conv, "channel", path), contact_inbox.get("source_id"), channel_map),
        status=opt_str(conv, "status", path),
        team=None if team is None else _team(team, join(meta_path, "team")),
        agent=None if assignee is None else opt_id(assignee, "id", join(meta_path, "assignee")),
        customer=None if sender is None else opt_id(sender, "id", join(meta_path, "sender")),
        labels=labels,
        priority=_priority(conv.get("priority")),
        updated_at=conv.get("updated_at"),
        timestamp=conv.get("timestamp"),
        created_at=conv.get("created_at"),
    )


def _team(team: JsonObject, path: str) -> str:
    return opt_str(team, "name", path) or req_id(team, "id", path)


def _channel(class_name: str | None, contact_source_id: object, channel_map: Mapping[str, str]) -> str:
    if class_name is None:
        return Channel.OTHER
    if class_name in channel_map:
        return channel_map[class_name]
    if class_name == "Channel::TwilioSms" and str(contact_source_id or "").startswith("whatsapp:"):
        return Channel.WHATSAPP
    return CHANNELS.get(class_name, Channel.OTHER)


def _priority(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidPayload(f"priority: expected string, got {shown(value)}")
    return str(value)


def changed_attributes(body: JsonObject) -> dict[str, tuple[object, object]]:
    """``changed_attributes`` ([{attr: {previous_value, current_value}}, ...]) as attr -> (prev, current)."""
    raw = body.get("changed_attributes")
    items = [] if raw is None else [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise InvalidPayload("changed_attributes: expected array")
    out: dict[str, tuple[object, object]] = {}
    for i, item in enumerate(items):
        for attr, change in expect_object(item, f"changed_attributes[{i}]").items():
            values = expect_object(change, f"changed_attributes[{i}].{attr}")
            out[attr] = (values.get("previous_value"), values.get("current_value"))
    return out


def object_or_json(body: JsonObject, key: str) -> JsonObject:
    value = body.get(key)
    if isinstance(value, str):  # some versions serialise the JSON column as a string
        try:
            value = msgspec.json.decode(value) if value.strip() else None
        except msgspec.MsgspecError:
            raise InvalidPayload(f"{key}: invalid JSON string") from None
    return {} if value is None else expect_object(value, key)
