from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from services.ingest.connectors.base import BadSignature, InvalidPayload, Mapped, UnsupportedMediaType
from services.ingest.connectors.twilio import TwilioConfig, connector
from shared.events import AgentStatus, Event

from .support import assert_usable, corpus_json, make_request

TOKEN = "12345678901234567890123456789012"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"
CALL = "CA5f2bd1e0c3a44b0d9a6f1f3e9e0c7a11"
TASK = "WT9d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a"
WORKER = "WK4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e"
URL = "https://ingest.example.com/v1/webhooks/twilio/t1"
CONFIG = TwilioConfig(auth_token=SecretStr(TOKEN))
FORM = "application/x-www-form-urlencoded"


def twilio_signature(url: str, params: list[tuple[str, str]], token: str = TOKEN) -> str:
    """Written from Twilio's "Webhooks security" page, independently of the connector."""
    data = url
    for name in sorted({n for n, _ in params}):
        for value in sorted(v for n, v in params if n == name):
            data += name + value
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def post(
    params: dict[str, str] | list[tuple[str, str]],
    *,
    config: TwilioConfig = CONFIG,
    url: str = URL,
    signed_url: str | None = None,
    token: str = TOKEN,
    signature: str | None = None,
    content_type: str = FORM,
) -> Mapped:
    pairs = list(params.items()) if isinstance(params, dict) else params
    body = urlencode(pairs).encode()
    headers = {"X-Twilio-Signature": signature or twilio_signature(signed_url or url, pairs, token)}
    mapped = connector.handle(make_request(body, content_type=content_type, headers=headers, url=url), config)
    assert_usable(mapped, prefix="twilio")
    return mapped


def voice(**changes: str) -> dict[str, str]:
    params: dict[str, str] = corpus_json("twilio", "voice_completed.json")
    params.update(changes)
    return params


def task(event_type: str, **changes: Any) -> dict[str, str]:
    params: dict[str, str] = corpus_json("twilio", "taskrouter_task.json")
    params["EventType"] = event_type
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value if isinstance(value, str) else json.dumps(value)
    return params


def worker(activity: str, **changes: str) -> dict[str, str]:
    params: dict[str, str] = corpus_json("twilio", "worker_activity_update.json")
    params.update(WorkerActivityName=activity, **changes)
    return params


# voice status callbacks


def test_completed_call_ends_with_talk_time() -> None:
    [event] = post(voice()).events
    assert event.type == "call.ended"
    assert event.source == f"twilio:{ACCOUNT}"
    assert event.conversation_id == f"twilio:{CALL}"
    assert event.channel == "phone"
    assert event.talk_seconds == 185
    assert event.customer == "+15552223333"
    assert event.occurred_at == datetime(2025, 1, 15, 11, 40, 1, tzinfo=UTC)
    assert event.attributes == {"direction": "inbound"}


def test_outbound_call_customer_is_the_callee() -> None:
    assert post(voice(Direction="outbound-api")).events[0].customer == "+15550001111"


def test_redelivered_status_callback_has_the_same_id() -> None:
    assert post(voice()).events[0].id == post(voice()).events[0].id


@pytest.mark.parametrize(
    "status", ["queued", "ringing", "in-progress", "busy", "no-answer", "canceled", "failed"]
)
def test_other_call_statuses_are_ignored(status: str) -> None:
    mapped = post(voice(CallStatus=status))
    assert (mapped.events, mapped.ignored) == ([], [f"call_status:{status}"])


def test_unknown_call_status_is_ignored_not_an_error() -> None:
    assert post(voice(CallStatus="teleported")).ignored == ["unknown_call_status:teleported"]


def test_child_leg_is_ignored() -> None:
    mapped = post(voice(ParentCallSid=CALL, CallSid="CA" + "1" * 32, Direction="outbound-dial"))
    assert (mapped.events, mapped.ignored) == ([], ["child_call_leg"])


def test_bad_call_duration_and_timestamp() -> None:
    with pytest.raises(InvalidPayload, match=r"^CallDuration: expected seconds, got 'long'"):
        post(voice(CallDuration="long"))
    with pytest.raises(InvalidPayload, match=r"^Timestamp: unrecognised time format"):
        post(voice(Timestamp="around noon"))
    params = voice()
    del params["Timestamp"]
    with pytest.raises(InvalidPayload, match=r"^Timestamp: required"):
        post(params)


# TaskRouter


def test_task_queue_entered_is_the_offer() -> None:
    [event] = post(task("task-queue.entered")).events
    assert event.type == "call.queued"
    assert event.queue == "Support"
    assert event.channel == "phone"
    assert event.conversation_id == f"twilio:{CALL}"  # joins the voice callbacks of the same call
    assert event.customer == "+15552223333"
    assert event.occurred_at == datetime.fromtimestamp(1736940100, UTC)


def test_entering_another_queue_is_another_offer() -> None:
    first = post(task("task-queue.entered")).events[0]
    escalated = post(task("task-queue.entered", TaskQueueSid="WQ" + "2" * 32, TaskQueueName="Tier 2")).events[
        0
    ]
    assert escalated.id != first.id
    assert escalated.queue == "Tier 2"


def test_task_created_is_not_a_second_offer() -> None:
    mapped = post(task("task.created"))
    assert (mapped.events, mapped.ignored) == ([], ["ignored_event:task.created"])


def test_task_without_call_sid_is_its_own_conversation() -> None:
    attributes = {"from": "alice@example.com", "channelType": "web"}
    [event] = post(task("task-queue.entered", TaskAttributes=attributes, TaskChannelUniqueName="chat")).events
    assert event.conversation_id == f"twilio:{TASK}"
    assert event.channel == "chat"
    assert event.customer == "alice@example.com"


def test_reservation_accepted_is_the_answer() -> None:
    params = task(
        "reservation.accepted",
        TaskAge="42",
        WorkerSid=WORKER,
        WorkerName="alice",
        ReservationSid="WR" + "3" * 32,
    )
    [event] = post(params).events
    assert event.type == "call.answered"
    assert event.wait_seconds == 42
    assert event.agent == WORKER
    assert event.queue == "Support"


def test_task_canceled_is_an_abandon() -> None:
    [event] = post(task("task.canceled", TaskAge="95", TaskCanceledReason="hangup")).events
    assert event.type == "call.abandoned"
    assert event.wait_seconds == 95
    assert event.attributes == {"canceled_reason": "hangup"}


@pytest.mark.parametrize("why", ["Task TTL Exceeded", "Workflow Timeout", "task-queue.timeout"])
def test_task_canceled_by_timeout_is_a_timeout(why: str) -> None:
    [event] = post(task("task.canceled", TaskAge="600", TaskCanceledReason=why)).events
    assert event.type == "call.timed_out"
    assert event.wait_seconds == 600


def test_queue_timeout_and_timeout_cancellation_in_one_queue_count_once() -> None:
    timeout = post(task("task-queue.timeout", TaskAge="600")).events[0]
    canceled = post(task("task.canceled", TaskAge="601", TaskCanceledReason="Task TTL Exceeded")).events[0]
    assert timeout.type == canceled.type == "call.timed_out"
    assert timeout.id == canceled.id
    other_queue = post(task("task-queue.timeout", TaskQueueSid="WQ" + "2" * 32)).events[0]
    assert other_queue.id != timeout.id


def test_task_completed_ends_the_call_once_with_the_voice_callback() -> None:
    [ended] = post(task("task.completed", TaskAge="400", WorkerSid=WORKER)).events
    assert ended.type == "call.ended"
    assert (ended.talk_seconds, ended.wrap_seconds, ended.hold_seconds) == (150, 30, 12)
    assert ended.agent == WORKER
    assert ended.id == post(voice()).events[0].id


def test_task_completed_without_measures_has_no_durations() -> None:
    [ended] = post(task("task.completed", TaskAttributes={"conversations": {"talk_time": "n/a"}})).events
    assert (ended.talk_seconds, ended.wrap_seconds, ended.hold_seconds) == (None, None, None)
    assert ended.conversation_id == f"twilio:{TASK}"


@pytest.mark.parametrize(
    "event_type", ["task.wrapup", "reservation.created", "reservation.rejected", "workflow.timeout"]
)
def test_unmapped_taskrouter_events_are_ignored(event_type: str) -> None:
    assert post(task(event_type)).ignored == [f"ignored_event:{event_type}"]


def test_unknown_taskrouter_event_is_ignored() -> None:
    assert post(task("task.levitated")).ignored == ["unknown_event:task.levitated"]


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("voice", "phone"),
        ("chat", "chat"),
        ("sms", "sms"),
        ("email", "email"),
        ("default", "other"),
        ("fax", "other"),
    ],
)
def test_task_channels(channel: str, expected: str) -> None:
    assert post(task("task-queue.entered", TaskChannelUniqueName=channel)).events[0].channel == expected


def test_iso_timestamp_is_accepted() -> None:
    event = post(task("task-queue.entered", Timestamp="2025-01-15T11:21:40Z")).events[0]
    assert event.occurred_at == datetime(2025, 1, 15, 11, 21, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"TaskAttributes": "{not json"}, r"^TaskAttributes: invalid JSON"),
        ({"TaskAttributes": "[1, 2]"}, r"^TaskAttributes: expected object, got array"),
        ({"TaskAge": "ancient"}, r"^TaskAge: expected seconds"),
        ({"TaskAge": "-3"}, r"^TaskAge: -3 seconds is out of range"),
        ({"TaskSid": None}, r"^TaskSid: required"),
        ({"Timestamp": "99999999999999"}, r"^Timestamp: .*outside accepted range"),
    ],
)
def test_bad_task_fields(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidPayload, match=expected):
        post(task("reservation.accepted", WorkerSid=WORKER, **changes))


# workers


@pytest.mark.parametrize(
    ("activity", "status"),
    [
        ("Available", "available"),
        ("Idle", "available"),
        ("Offline", "offline"),
        ("Break", "away"),
        ("Away", "away"),
        ("Busy", "busy"),
        ("Unavailable", "busy"),
    ],
)
def test_worker_activity(activity: str, status: str) -> None:
    [event] = post(worker(activity)).events
    assert event.type == "agent.status_changed"
    assert event.agent_status == status
    assert event.agent == WORKER
    assert event.conversation_id == f"twilio:worker:{WORKER}"
    assert event.attributes == {"activity": activity}
    assert event.occurred_at == datetime.fromtimestamp(1736939000, UTC)


def test_unknown_activity_is_ignored_and_can_be_mapped() -> None:
    assert post(worker("Training")).ignored == ["unknown_activity:Training"]
    config = TwilioConfig(auth_token=SecretStr(TOKEN), activity_map={"Training": AgentStatus.AWAY})
    assert post(worker("Training"), config=config).events[0].agent_status == "away"


def test_worker_event_ids() -> None:
    first = post(worker("Available")).events[0].id
    assert post(worker("Available")).events[0].id == first
    assert post(worker("Available", Sid="EV" + "5" * 32)).events[0].id != first


def test_bad_worker_attributes() -> None:
    with pytest.raises(InvalidPayload, match=r"^WorkerAttributes: invalid JSON"):
        post(worker("Available", WorkerAttributes="{'single': 'quotes'}"))


# signatures


def test_bad_and_missing_signature() -> None:
    with pytest.raises(BadSignature) as info:
        post(voice(), signature="bm90IGEgc2lnbmF0dXJl")
    assert info.value.status_code == 401
    body = urlencode(voice()).encode()
    with pytest.raises(BadSignature, match="missing X-Twilio-Signature") as missing:
        connector.handle(make_request(body, content_type=FORM, url=URL), CONFIG)
    assert missing.value.reason == "missing_signature"


def test_wrong_token() -> None:
    with pytest.raises(BadSignature):
        post(voice(), token="0" * 32)


def test_tampered_parameter() -> None:
    params = voice()
    signature = twilio_signature(URL, list(params.items()))
    with pytest.raises(BadSignature):
        post({**params, "CallDuration": "1"}, signature=signature)


@pytest.mark.parametrize(
    ("received", "signed"),
    [
        ("https://ingest.example.com/hook?x=1", "https://ingest.example.com:443/hook?x=1"),
        ("https://ingest.example.com:443/hook", "https://ingest.example.com/hook"),
        ("http://ingest.example.com/hook", "http://ingest.example.com:80/hook"),
        ("http://ingest.example.com:80/hook", "http://ingest.example.com/hook"),
    ],
)
def test_default_port_is_tried_both_ways(received: str, signed: str) -> None:
    assert len(post(voice(), url=received, signed_url=signed).events) == 1


def test_non_default_port_must_match() -> None:
    with pytest.raises(BadSignature):
        post(
            voice(), url="https://ingest.example.com:8443/hook", signed_url="https://ingest.example.com/hook"
        )


def test_public_url_is_used_behind_a_proxy() -> None:
    public = "https://hooks.acme.example/twilio/t1"
    config = TwilioConfig(auth_token=SecretStr(TOKEN), public_url=public)
    internal = "http://ingest:8080/v1/webhooks/twilio/t1?tenant=t1"
    assert len(post(voice(), config=config, url=internal, signed_url=public + "?tenant=t1").events) == 1
    with pytest.raises(BadSignature):
        post(voice(), url=internal, signed_url=public + "?tenant=t1")


def test_repeated_parameters_are_sorted_by_value() -> None:
    pairs = [*voice().items(), ("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "answered")]
    assert len(post(pairs).events) == 1


def test_json_body_with_body_sha256() -> None:
    body = json.dumps(voice()).encode()
    url = f"{URL}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"X-Twilio-Signature": twilio_signature(url, [])}
    mapped = connector.handle(
        make_request(body, content_type="application/json", headers=headers, url=url), CONFIG
    )
    assert [e.type for e in mapped.events] == ["call.ended"]
    assert mapped.events[0].talk_seconds == 185


def test_json_body_with_wrong_or_missing_body_hash() -> None:
    body = json.dumps(voice()).encode()
    wrong = f"{URL}?bodySHA256={hashlib.sha256(b'other').hexdigest()}"
    request = make_request(body, headers={"X-Twilio-Signature": twilio_signature(wrong, [])}, url=wrong)
    with pytest.raises(BadSignature, match="bodySHA256 does not match"):
        connector.handle(request, CONFIG)
    request = make_request(body, headers={"X-Twilio-Signature": twilio_signature(URL, [])}, url=URL)
    with pytest.raises(BadSignature, match="bodySHA256 query parameter is required"):
        connector.handle(request, CONFIG)


def test_account_must_match_configuration() -> None:
    config = TwilioConfig(auth_token=SecretStr(TOKEN), account_sid="AC" + "f" * 32)
    with pytest.raises(BadSignature, match="AccountSid") as info:
        post(voice(), config=config)
    assert info.value.reason == "account_mismatch"
    assert (
        len(post(voice(), config=TwilioConfig(auth_token=SecretStr(TOKEN), account_sid=ACCOUNT)).events) == 1
    )


def test_missing_account_sid() -> None:
    params = voice()
    del params["AccountSid"]
    with pytest.raises(InvalidPayload, match=r"^AccountSid: required"):
        post(params)


def test_config_validation_and_secret_hiding() -> None:
    assert TOKEN not in repr(CONFIG)
    with pytest.raises(ValidationError):
        TwilioConfig(auth_token=SecretStr(TOKEN), account_sid="not-a-sid")
    with pytest.raises(ValidationError):
        TwilioConfig(auth_token=SecretStr(TOKEN), public_url="/relative/path")


# malformed


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", None])
def test_wrong_content_type(content_type: str | None) -> None:
    request = make_request(b"CallSid=CA1", content_type=content_type, headers={"X-Twilio-Signature": "x"})
    with pytest.raises(UnsupportedMediaType):
        connector.handle(request, CONFIG)


def test_invalid_utf8_body() -> None:
    request = make_request(b"CallSid=CA\xff", content_type=FORM, headers={"X-Twilio-Signature": "x"})
    with pytest.raises(InvalidPayload, match=r"^body: invalid UTF-8") as info:
        connector.handle(request, CONFIG)
    assert info.value.reason == "bad_encoding"


def test_percent_encoded_invalid_utf8() -> None:
    request = make_request(b"CallSid=CA%FF%FE", content_type=FORM, headers={"X-Twilio-Signature": "x"})
    with pytest.raises(InvalidPayload, match="percent-encoded bytes are not valid UTF-8"):
        connector.handle(request, CONFIG)


def test_truncated_json_body() -> None:
    body = b'{"CallSid": "CA1", "CallStatus": '
    url = f"{URL}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    request = make_request(body, headers={"X-Twilio-Signature": twilio_signature(url, [])}, url=url)
    with pytest.raises(InvalidPayload, match=r"^body: invalid JSON"):
        connector.handle(request, CONFIG)


def test_unrecognised_callback_is_ignored() -> None:
    mapped = post({"AccountSid": ACCOUNT, "MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"})
    assert (mapped.events, mapped.ignored) == ([], ["unknown_callback"])


KINDS = ["voice", "task-queue.entered", "reservation.accepted", "task.canceled", "task.completed", "worker"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(KINDS), st.data(), st.text(st.characters(exclude_categories=("Cs",)), max_size=30))
def test_any_parameter_value_maps_or_is_rejected_cleanly(kind: str, data: st.DataObject, value: str) -> None:
    if kind == "voice":
        params = voice()
    elif kind == "worker":
        params = worker("Available")
    else:
        params = task(kind, WorkerSid=WORKER)
    params[data.draw(st.sampled_from(sorted(params)))] = value
    error: InvalidPayload | BadSignature | None = None
    try:
        post(params)  # signed properly, so only the mapping is exercised
    except (InvalidPayload, BadSignature) as exc:
        error = exc
    if error is not None:
        assert error.status_code in (401, 422)
        named = error.detail.split(":", 1)[0]
        # The vendor parameter, or the canonical field it became (e.g. a NUL in AccountSid is
        # refused as "source: contains a NUL character").
        assert named in params or named in Event.__struct_fields__ or error.detail.startswith("body")
