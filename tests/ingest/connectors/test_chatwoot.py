from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from services.ingest.connectors.base import (
    BadSignature,
    InvalidPayload,
    Mapped,
    StaleRequest,
    UnsupportedMediaType,
)
from services.ingest.connectors.chatwoot import ChatwootConfig, connector
from shared.events import Channel

from .support import NOW, assert_usable, corpus_json, json_paths, json_values, make_request, replaced

SECRET = "whsec-test-9f8e7d"
CONFIG = ChatwootConfig(secret=SecretStr(SECRET))
DELIVERY = "0b6f3c1e-8d2a-4c5e-9f1a-7b3d2e1c0a99"


def sign(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(NOW.timestamp()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Chatwoot-Timestamp": ts, "X-Chatwoot-Signature": f"sha256={mac}"}


def send(
    payload: dict[str, Any] | bytes,
    *,
    config: ChatwootConfig = CONFIG,
    delivery: str | None = DELIVERY,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Mapped:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    all_headers = sign(body) if headers is None else headers
    if delivery is not None:
        all_headers = {**all_headers, "X-Chatwoot-Delivery": delivery}
    mapped = connector.handle(make_request(body, headers=all_headers, content_type=content_type), config)
    assert_usable(mapped, prefix="chatwoot")
    return mapped


def sample(name: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(corpus_json("chatwoot", f"{name}.json"))
    payload.update(changes)
    return payload


def message(**changes: Any) -> dict[str, Any]:
    return sample("message_created", **changes)


# conversations


def test_conversation_created() -> None:
    [event] = send(sample("conversation_created")).events
    assert event.type == "conversation.created"
    assert event.source == "chatwoot:12"
    assert event.conversation_id == "chatwoot:12:345"
    assert event.occurred_at == datetime(2025, 1, 15, 11, 20, tzinfo=UTC)
    assert event.status == "open"
    assert event.channel == "chat"
    assert event.customer == "77"
    assert event.labels == ["billing", "vip"]
    assert event.agent is None
    assert event.team is None


def test_conversation_created_pending_for_a_bot_adds_a_status_change() -> None:
    created, pending = send(sample("conversation_created", status="pending")).events
    assert created.type == "conversation.created"
    assert created.status == "pending"
    assert pending.type == "conversation.status_changed"
    assert pending.status == "pending"
    assert pending.occurred_at == created.occurred_at
    assert pending.id != created.id


def test_legacy_bot_status_means_pending() -> None:
    events = send(sample("conversation_created", status="bot")).events
    assert [e.status for e in events] == ["pending", "pending"]


def test_conversation_created_without_created_at_uses_timestamp() -> None:
    payload = sample("conversation_created", timestamp=1736940060)
    del payload["created_at"]
    assert send(payload).events[0].occurred_at == datetime(2025, 1, 15, 11, 21, tzinfo=UTC)


def test_status_changed() -> None:
    [event] = send(sample("conversation_status_changed")).events
    assert event.type == "conversation.status_changed"
    assert event.status == "resolved"
    assert event.attributes == {"previous_status": "open"}
    assert event.occurred_at == datetime(2025, 1, 15, 11, 50, 0, 503921, tzinfo=UTC)
    assert (event.agent, event.team, event.priority) == ("5", "Support", "high")


def test_status_changed_without_changed_attributes_uses_conversation_status() -> None:
    [event] = send(sample("conversation_status_changed", changed_attributes=None, status="snoozed")).events
    assert event.status == "snoozed"
    assert event.attributes is None


def test_deprecated_resolved_event_dedupes_with_status_changed() -> None:
    modern = send(sample("conversation_status_changed")).events[0]
    legacy = send(
        sample("conversation_status_changed", event="conversation_resolved"), delivery="other"
    ).events[0]
    assert legacy.status == "resolved"
    assert legacy.id == modern.id


def test_deprecated_opened_event_means_open() -> None:
    [event] = send(sample("conversation_status_changed", event="conversation_opened", status="open")).events
    assert event.status == "open"


def test_status_changed_without_updated_at_is_keyed_by_delivery() -> None:
    payload = sample("conversation_status_changed")
    del payload["updated_at"]
    first = send(payload).events[0]
    assert first.occurred_at == datetime.fromtimestamp(1736941700, UTC)
    assert send(payload).events[0].id == first.id
    assert send(payload, delivery="another-delivery").events[0].id != first.id


def test_unknown_status_is_ignored_not_an_error() -> None:
    changes = [{"status": {"previous_value": "open", "current_value": "escalated"}}]
    mapped = send(sample("conversation_status_changed", changed_attributes=changes))
    assert mapped.events == []
    assert mapped.ignored == ["unknown_status:escalated"]


def test_updated_assignee_becomes_assigned() -> None:
    [event] = send(sample("conversation_updated")).events
    assert event.type == "conversation.assigned"
    assert (event.agent, event.team) == ("5", "Support")
    assert event.channel == "email"
    assert event.conversation_id == "chatwoot:12:346"
    assert event.occurred_at == datetime(2025, 1, 15, 11, 26, 0, 250000, tzinfo=UTC)


def test_updated_team_only_without_meta_uses_changed_id() -> None:
    payload = sample(
        "conversation_updated", changed_attributes=[{"team_id": {"previous_value": None, "current_value": 9}}]
    )
    payload["meta"] = {"sender": {"id": 78, "type": "contact"}, "assignee": None, "team": None}
    [event] = send(payload).events
    assert (event.agent, event.team) == (None, "9")


def test_updated_unassignment_is_ignored() -> None:
    payload = sample(
        "conversation_updated",
        changed_attributes=[{"assignee_id": {"previous_value": 5, "current_value": None}}],
    )
    payload["meta"] = {"sender": {"id": 78, "type": "contact"}, "assignee": None, "team": None}
    mapped = send(payload)
    assert (mapped.events, mapped.ignored) == ([], ["unassigned"])


def test_updated_labels_carry_the_full_list() -> None:
    changes = [{"label_list": {"previous_value": ["invoice"], "current_value": ["invoice", "urgent"]}}]
    [event] = send(
        sample("conversation_updated", changed_attributes=changes, labels=["invoice", "urgent"])
    ).events
    assert event.type == "conversation.labels_changed"
    assert event.labels == ["invoice", "urgent"]


def test_updated_labels_and_assignee_together_give_two_events() -> None:
    changes = [
        {"assignee_id": {"previous_value": None, "current_value": 5}},
        {"label_list": {"previous_value": [], "current_value": ["invoice"]}},
    ]
    events = send(sample("conversation_updated", changed_attributes=changes)).events
    assert [e.type for e in events] == ["conversation.assigned", "conversation.labels_changed"]
    assert events[0].id != events[1].id


@pytest.mark.parametrize("attribute", ["priority", "status", "custom_attributes", "waiting_since"])
def test_other_updates_are_ignored(attribute: str) -> None:
    changes = [{attribute: {"previous_value": None, "current_value": "x"}}]
    mapped = send(sample("conversation_updated", changed_attributes=changes))
    assert (mapped.events, mapped.ignored) == ([], ["no_kpi_change"])


# messages


def test_incoming_message() -> None:
    [event] = send(message()).events
    assert event.type == "message.created"
    assert event.conversation_id == "chatwoot:12:345"
    assert event.message_id == "chatwoot:12:msg:9001"
    assert (event.direction, event.author) == ("inbound", "customer")
    assert event.private is False
    assert event.automated is None
    assert event.occurred_at == datetime(2025, 1, 15, 11, 21, 30, 250000, tzinfo=UTC)
    assert (event.agent, event.team, event.customer) == ("5", "Support", "77")
    assert event.labels == ["billing"]


def test_outgoing_agent_reply_names_the_sender() -> None:
    sender = {"id": 8, "name": "Ann", "email": "ann@acme.example", "type": "user"}
    [event] = send(message(message_type="outgoing", sender=sender)).events
    assert (event.direction, event.author, event.agent) == ("outbound", "agent", "8")
    assert event.automated is None


@pytest.mark.parametrize("kind", ["agent_bot", "captain_assistant"])
def test_bot_messages(kind: str) -> None:
    [event] = send(message(message_type="outgoing", sender={"id": 2, "name": "Bot", "type": kind})).events
    assert (event.direction, event.author) == ("outbound", "bot")
    assert event.agent == "5"  # the conversation's assignee, not the bot


def test_private_note() -> None:
    [event] = send(message(message_type="outgoing", private=True, sender={"id": 5, "type": "user"})).events
    assert event.private is True
    assert event.author == "agent"


def test_automation_rule_message() -> None:
    payload = message(message_type="outgoing", sender=None, content_attributes={"automation_rule_id": 17})
    [event] = send(payload).events
    assert (event.author, event.automated) == ("system", "rule")


def test_campaign_message() -> None:
    payload = message(
        message_type="outgoing", sender={"id": 5, "type": "user"}, additional_attributes={"campaign_id": 3}
    )
    [event] = send(payload).events
    assert (event.author, event.automated) == ("agent", "campaign")


def test_template_message_without_sender() -> None:
    [event] = send(message(message_type="template", sender=None, content_type="input_select")).events
    assert (event.direction, event.author, event.automated) == ("outbound", "system", "template")


def test_csat_survey_message_is_automated_survey() -> None:
    [event] = send(message(message_type="template", sender=None, content_type="input_csat")).events
    assert event.automated == "survey"


def test_content_attributes_as_json_string_are_read() -> None:
    [event] = send(
        message(sender=None, message_type="outgoing", content_attributes='{"automation_rule_id": 4}')
    ).events
    assert event.automated == "rule"


def test_activity_message_is_ignored() -> None:
    mapped = send(message(message_type="activity", sender=None))
    assert (mapped.events, mapped.ignored) == ([], ["activity_message"])


def test_unknown_message_type_and_sender_are_ignored() -> None:
    assert send(message(message_type="whisper")).ignored == ["unknown_message_type:whisper"]
    assert send(message(sender={"id": 1, "type": "robot_overlord"})).ignored == [
        "unknown_sender:robot_overlord"
    ]


def test_integer_message_type_is_understood() -> None:
    assert send(message(message_type=1, sender={"id": 5, "type": "user"})).events[0].direction == "outbound"


def test_legacy_message_with_utc_suffix_and_untyped_sender() -> None:
    [event] = send(sample("message_created_legacy")).events
    assert event.occurred_at == datetime(2021, 7, 23, 18, 2, 48, tzinfo=UTC)
    assert (event.author, event.direction) == ("customer", "inbound")
    assert event.source == "chatwoot:1"
    assert event.conversation_id == "chatwoot:1:10"


def test_epoch_created_at() -> None:
    assert send(message(created_at=1736940090)).events[0].occurred_at == datetime(
        2025, 1, 15, 11, 21, 30, tzinfo=UTC
    )


def test_message_created_id_is_the_message_whatever_the_delivery() -> None:
    first = send(message()).events[0].id
    assert send(message(), delivery="retry-or-second-webhook").events[0].id == first
    assert send(message(), delivery=None).events[0].id == first
    assert send(message(id=9002)).events[0].id != first


# CSAT


def test_csat_rating_becomes_survey_submitted() -> None:
    [event] = send(sample("message_updated_csat")).events
    assert event.type == "survey.submitted"
    assert (event.survey, event.score, event.comment) == ("csat", 4, None)
    assert event.survey_id == "chatwoot:12:msg:9005"
    assert event.agent == "5"
    assert event.occurred_at == datetime(2025, 1, 15, 11, 55, 0, 750000, tzinfo=UTC)


def csat(rating: object, feedback: object = "", **changes: Any) -> dict[str, Any]:
    values = {"csat_survey_response": {"rating": rating, "feedback_message": feedback}}
    return sample("message_updated_csat", content_attributes={"submitted_values": values}, **changes)


def test_csat_answered_twice_keeps_survey_id_with_distinct_event_ids() -> None:
    rating = send(csat(2), delivery="d-1").events[0]
    conversation = {**csat(2)["conversation"], "updated_at": 1736942160.5}
    comment = send(csat(2, "Took too long", conversation=conversation), delivery="d-2").events[0]
    assert rating.survey_id == comment.survey_id
    assert rating.id != comment.id
    assert comment.comment == "Took too long"
    assert comment.occurred_at > rating.occurred_at


def test_csat_same_delivery_twice_is_the_same_event() -> None:
    assert send(csat(5), delivery="d-1").events[0].id == send(csat(5), delivery="d-1").events[0].id


def test_csat_without_delivery_id_is_keyed_by_body() -> None:
    first = send(csat(5), delivery=None).events[0].id
    assert send(csat(5), delivery=None).events[0].id == first
    assert send(csat(5, "great"), delivery=None).events[0].id != first


def test_csat_rating_as_string_and_time_falls_back_to_received_at() -> None:
    payload = csat("3")
    del payload["conversation"]["updated_at"]
    [event] = send(payload).events
    assert event.score == 3
    assert event.occurred_at == NOW


def test_csat_long_comment_is_truncated() -> None:
    assert len(send(csat(1, "x" * 5000)).events[0].comment or "") == 4000


@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        (0, "outside the CSAT scale 1..5"),
        (6, "outside the CSAT scale"),
        (None, "rating: required"),
        ("good", "expected integer"),
        ("+-5", "expected integer"),
        ("\u00b2", "expected integer"),
        (4.5, "expected integer"),
    ],
)
def test_csat_bad_rating(rating: object, expected: str) -> None:
    path = r"^content_attributes\.submitted_values\.csat_survey_response\.rating"
    with pytest.raises(InvalidPayload, match=path) as info:
        send(csat(rating))
    assert expected in info.value.detail


def test_message_updated_without_survey_is_ignored() -> None:
    mapped = send(sample("message_updated_csat", content_attributes={"submitted_values": [{"name": "x"}]}))
    assert (mapped.events, mapped.ignored) == ([], ["no_kpi_change"])


# skipped events


@pytest.mark.parametrize(
    "name",
    [
        "contact_created",
        "contact_updated",
        "conversation_typing_on",
        "conversation_typing_off",
        "inbox_created",
    ],
)
def test_non_kpi_events_are_ignored(name: str) -> None:
    mapped = send({"event": name, "id": 1, "account": {"id": 12}})
    assert (mapped.events, mapped.ignored) == ([], [f"ignored_event:{name}"])


def test_webwidget_triggered_is_ignored() -> None:
    assert send(sample("webwidget_triggered")).ignored == ["ignored_event:webwidget_triggered"]


def test_unknown_event_is_ignored_with_a_bounded_reason() -> None:
    mapped = send({"event": "conversation_teleported" + "_x" * 50})
    assert mapped.events == []
    [reason] = mapped.ignored
    assert reason.startswith("unknown_event:conversation_teleported")
    assert len(reason) == 60


# channels and accounts


@pytest.mark.parametrize(
    ("channel", "source_id", "expected"),
    [
        ("Channel::WebWidget", "x", "chat"),
        ("Channel::Api", "x", "chat"),
        ("Channel::Email", "x", "email"),
        ("Channel::Whatsapp", "x", "whatsapp"),
        ("Channel::TwilioSms", "+15550001111", "sms"),
        ("Channel::TwilioSms", "whatsapp:+15550001111", "whatsapp"),
        ("Channel::Sms", "x", "sms"),
        ("Channel::FacebookPage", "x", "social"),
        ("Channel::Instagram", "x", "social"),
        ("Channel::TwitterProfile", "x", "social"),
        ("Channel::Telegram", "x", "social"),
        ("Channel::Line", "x", "social"),
        ("Channel::Carrier", "x", "other"),
        (None, "x", "other"),
    ],
)
def test_channels(channel: str | None, source_id: str, expected: str) -> None:
    payload = sample("conversation_created", channel=channel)
    payload["contact_inbox"]["source_id"] = source_id
    assert send(payload).events[0].channel == expected


def test_channel_map_overrides() -> None:
    config = ChatwootConfig(secret=SecretStr(SECRET), channel_map={"Channel::Api": Channel.PHONE})
    assert (
        send(sample("conversation_created", channel="Channel::Api"), config=config).events[0].channel
        == "phone"
    )


def test_conversation_without_messages_needs_the_configured_account() -> None:
    payload = sample("conversation_created", messages=[])
    with pytest.raises(InvalidPayload, match=r"^account\.id: missing"):
        send(payload)
    config = ChatwootConfig(secret=SecretStr(SECRET), account_id=12)
    assert send(payload, config=config).events[0].conversation_id == "chatwoot:12:345"


def test_configured_account_must_match_the_payload() -> None:
    config = ChatwootConfig(secret=SecretStr(SECRET), account_id=13)
    with pytest.raises(InvalidPayload, match=r"account\.id: 12 does not match the configured account 13"):
        send(message(), config=config)


# signatures


def test_bad_signature() -> None:
    body = json.dumps(message()).encode()
    headers = sign(body)
    headers["X-Chatwoot-Signature"] = "sha256=" + "0" * 64
    with pytest.raises(BadSignature) as info:
        send(body, headers=headers)
    assert info.value.status_code == 401


def test_wrong_secret() -> None:
    body = json.dumps(message()).encode()
    with pytest.raises(BadSignature, match="does not match"):
        send(body, headers=sign(body, secret="someone-else"))


def test_tampered_body() -> None:
    body = json.dumps(message()).encode()
    with pytest.raises(BadSignature):
        send(body.replace(b"incoming", b"outgoing"), headers=sign(body))


@pytest.mark.parametrize("missing", ["X-Chatwoot-Signature", "X-Chatwoot-Timestamp"])
def test_missing_signature_headers(missing: str) -> None:
    body = json.dumps(message()).encode()
    headers = sign(body)
    del headers[missing]
    with pytest.raises(BadSignature, match="missing") as info:
        send(body, headers=headers)
    assert info.value.reason == "missing_signature"


@pytest.mark.parametrize("timestamp", ["yesterday", "1736942400.5", "\u00b2\u00b3", "-1736942400"])
def test_non_numeric_timestamp(timestamp: str) -> None:
    body = json.dumps(message()).encode()
    with pytest.raises(BadSignature, match="not a unix timestamp"):
        send(body, headers={**sign(body), "X-Chatwoot-Timestamp": timestamp})


@pytest.mark.parametrize("offset", [-301, 301, -86400])
def test_stale_timestamp(offset: int) -> None:
    body = json.dumps(message()).encode()
    with pytest.raises(StaleRequest) as info:
        send(body, headers=sign(body, timestamp=int(NOW.timestamp()) + offset))
    assert info.value.status_code == 401
    assert info.value.reason == "stale_timestamp"


def test_timestamp_within_skew_is_accepted() -> None:
    body = json.dumps(message()).encode()
    assert (
        len(send(body, headers=sign(body, timestamp=int((NOW - timedelta(seconds=299)).timestamp()))).events)
        == 1
    )


def test_no_secret_configured_is_refused() -> None:
    with pytest.raises(BadSignature, match="no webhook secret configured"):
        send(message(), config=ChatwootConfig())


def test_unsigned_opt_in_accepts_unsigned_requests() -> None:
    assert len(send(message(), config=ChatwootConfig(unsigned=True), headers={}).events) == 1


def test_configured_secret_is_enforced_even_with_unsigned() -> None:
    with pytest.raises(BadSignature):
        send(message(), config=ChatwootConfig(secret=SecretStr(SECRET), unsigned=True), headers={})


def test_secret_is_not_shown_in_config_repr() -> None:
    assert SECRET not in repr(CONFIG)
    with pytest.raises(ValidationError):
        ChatwootConfig(max_skew_seconds=0)


# malformed bodies


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"event": "message_created", "id": 9', r"^body: invalid JSON"),
        (b'{"event": "message_created", "content": "\xff"}', r"^body: invalid UTF-8"),
        (b"[1, 2]", r"^body: expected object, got array"),
        (b'{"id": 1}', r"^event: required"),
        (b'{"event": 7}', r"^event: expected string, got integer"),
    ],
)
def test_malformed_bodies(body: bytes, expected: str) -> None:
    with pytest.raises(InvalidPayload, match=expected):
        send(body)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"conversation": "345"}, r"^conversation: expected object, got string"),
        ({"conversation": None}, r"^conversation: expected object, got null"),
        ({"id": True}, r"^id: expected integer or string id, got boolean"),
        ({"created_at": "last tuesday"}, r"^created_at: unrecognised time format"),
        ({"created_at": None}, r"^created_at: expected a time string"),
        ({"private": "no"}, r"^private: expected boolean"),
        ({"account": {"name": "no id"}}, r"^account\.id: required"),
        ({"sender": {"id": 1, "type": 5}}, r"^sender\.type: expected string"),
    ],
)
def test_wrong_types_name_the_field(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidPayload, match=expected):
        send(message(**changes))


def test_wrong_nested_types_name_the_path() -> None:
    payload = message()
    payload["conversation"]["meta"]["assignee"] = {"id": [5]}
    with pytest.raises(
        InvalidPayload, match=r"^conversation\.meta\.assignee\.id: expected integer or string id"
    ):
        send(payload)
    payload = sample("conversation_status_changed", changed_attributes=[{"status": "resolved"}])
    with pytest.raises(InvalidPayload, match=r"^changed_attributes\[0\]\.status: expected object"):
        send(payload)


def test_wrong_content_type_is_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        send(message(), content_type="application/x-www-form-urlencoded")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        ["conversation_created", "conversation_status_changed", "conversation_updated", "message_created",
         "message_created_legacy", "message_updated_csat"]
    ),
    st.data(),
    json_values,
)  # fmt: skip
def test_any_field_mutation_maps_or_is_rejected_cleanly(
    name: str, data: st.DataObject, value: object
) -> None:
    payload = sample(name)
    mutated = replaced(payload, data.draw(st.sampled_from(json_paths(payload))), value)
    error: InvalidPayload | None = None
    try:
        send(json.dumps(mutated).encode())  # send() checks every emitted event is usable
    except InvalidPayload as exc:
        error = exc
    if error is not None:
        assert error.status_code == 422
        assert ": " in error.detail
