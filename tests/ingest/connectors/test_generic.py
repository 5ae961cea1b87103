from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.connectors.base import InvalidPayload, Mapped, UnsupportedMediaType
from services.ingest.connectors.checks import checked
from services.ingest.connectors.generic import GenericConfig, connector
from shared.events import encode

from .support import assert_usable, json_values, make_request

CONFIG = GenericConfig()
CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def canonical(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "evt-1",
        "source": "crm:acme",
        "type": "message.created",
        "occurred_at": "2025-01-15T11:21:30.250Z",
        "conversation_id": "crm:acme:4711",
        "channel": "email",
        "direction": "inbound",
        "author": "customer",
        "labels": ["billing"],
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def cloudevent(**overrides: Any) -> dict[str, Any]:
    ce: dict[str, Any] = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "/crm/acme",
        "type": "com.supportpulse.conversation.status_changed",
        "time": "2025-01-15T11:50:00Z",
        "subject": "crm:acme:4711",
        "datacontenttype": "application/json",
        "data": {"status": "resolved", "channel": "email"},
    }
    ce.update(overrides)
    return {k: v for k, v in ce.items() if v is not None}


def handle(body: object, content_type: str | None = "application/json", tenant: str = "t1") -> Mapped:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    mapped = connector.handle(make_request(raw, content_type=content_type, tenant=tenant), CONFIG)
    assert_usable(mapped, tenant=tenant, prefix="generic")
    return mapped


def test_single_event_is_mapped_with_tenant_filled_and_fields_kept() -> None:
    mapped = handle(canonical())
    assert mapped.ignored == []
    [event] = mapped.events
    assert event.tenant == "t1"
    assert event.source == "crm:acme"
    assert event.type == "message.created"
    assert event.occurred_at == datetime(2025, 1, 15, 11, 21, 30, 250000, tzinfo=UTC)
    assert event.conversation_id == "crm:acme:4711"
    assert (event.channel, event.direction, event.author) == ("email", "inbound", "customer")
    assert event.labels == ["billing"]
    assert event.id.startswith("generic:")
    assert event.id != "evt-1"


def test_same_post_twice_gives_same_ids_and_different_source_gives_different_id() -> None:
    first = handle(canonical()).events[0].id
    assert handle(canonical()).events[0].id == first
    assert handle(canonical(source="crm:other")).events[0].id != first
    assert handle(canonical(id="evt-2")).events[0].id != first


def test_same_event_for_two_tenants_gets_different_ids() -> None:
    assert handle(canonical()).events[0].id != handle(canonical(), tenant="t2").events[0].id


def test_explicit_matching_tenant_is_accepted() -> None:
    assert handle(canonical(tenant="t1")).events[0].tenant == "t1"


def test_foreign_tenant_is_rejected() -> None:
    with pytest.raises(InvalidPayload, match=r"^tenant: 't2' does not match"):
        handle(canonical(tenant="t2"))


def test_batch_maps_every_event_in_order() -> None:
    body = [canonical(id=f"e{i}", occurred_at=1736940000 + i) for i in range(3)]
    mapped = handle(body)
    assert len(mapped.events) == 3
    assert [e.occurred_at for e in mapped.events] == [
        datetime.fromtimestamp(1736940000 + i, UTC) for i in range(3)
    ]


def test_batch_error_names_the_index_and_rejects_everything() -> None:
    body = [canonical(id="e0"), canonical(id="e1"), canonical(id="e2", occurred_at="1999-01-01T00:00:00Z")]
    with pytest.raises(InvalidPayload, match=r"^\[2\]\.occurred_at: .*outside accepted range"):
        handle(body)


def test_batch_limit() -> None:
    assert len(handle([canonical(id=f"e{i}") for i in range(1000)]).events) == 1000
    with pytest.raises(InvalidPayload, match="1001 events exceeds the limit of 1000"):
        handle([canonical(id=f"e{i}") for i in range(1001)])


def test_empty_batch_is_nothing() -> None:
    mapped = handle([])
    assert mapped.events == []
    assert mapped.ignored == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([canonical(conversation_id=None)], r"^\[0\]\.conversation_id: required"),
        (canonical(id=None), r"^id: required"),
        (canonical(id=12), r"^id: Expected str, got int"),
        (canonical(labels=["ok", 3]), r"^labels\[1\]: Expected str, got int"),
        (canonical(wait_seconds=-1), r"^wait_seconds: Expected .*>= 0"),
        (canonical(direction="sideways"), r"^direction: 'sideways' is not one of"),
        (canonical(direction=None), r"^direction: required for message.created"),
        (canonical(v=2), r"^v: schema version 2 is not supported"),
        (canonical(occurred_at="2025-01-15 11:00:00"), r"^occurred_at: .*no timezone"),
        (canonical(occurred_at=None), r"^occurred_at: required"),
        (canonical(id="x" * 201), r"^id: Expected str of length <= 200"),
        ([canonical(), "nope"], r"^\[1\]: expected object, got string"),
        (42, r"^body: expected an event object or an array"),
    ],
)
def test_invalid_events_name_field_and_reason(body: object, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        handle(body)


def test_epoch_occurred_at_is_accepted() -> None:
    assert handle(canonical(occurred_at=1736940000)).events[0].occurred_at == datetime(
        2025, 1, 15, 11, 20, tzinfo=UTC
    )


def test_unknown_channel_becomes_other_and_unknown_type_passes_through() -> None:
    [event] = handle(canonical(type="call.parked", channel="carrier-pigeon")).events
    assert event.channel == "other"
    assert event.type == "call.parked"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"id": "e1", "source": ', "bad_json"),
        (b"\xff\xfe{}", "bad_encoding"),
        (b"", "bad_json"),
    ],
)
def test_malformed_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=r"^body: ") as info:
        handle(body)
    assert info.value.reason == reason


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        handle(canonical(), content_type=content_type)
    assert info.value.status_code == 415


def test_content_type_parameters_are_ignored() -> None:
    assert len(handle(canonical(), content_type="application/json; charset=utf-8").events) == 1


# CloudEvents


def test_cloudevent_maps_envelope_onto_canonical_fields() -> None:
    [event] = handle(cloudevent(), content_type=CE).events
    assert event.type == "conversation.status_changed"
    assert event.status == "resolved"
    assert event.source == "/crm/acme"
    assert event.conversation_id == "crm:acme:4711"
    assert event.occurred_at == datetime(2025, 1, 15, 11, 50, tzinfo=UTC)


def test_cloudevent_id_is_deterministic_on_source_and_id() -> None:
    first = handle(cloudevent(), content_type=CE).events[0].id
    assert handle(cloudevent(), content_type=CE).events[0].id == first
    assert handle(cloudevent(source="/crm/other"), content_type=CE).events[0].id != first
    assert handle(cloudevent(id="B-1"), content_type=CE).events[0].id != first


def test_cloudevent_data_wins_over_envelope() -> None:
    ce = cloudevent(data={"status": "open", "occurred_at": "2025-01-15T11:00:00Z", "conversation_id": "c-9"})
    [event] = handle(ce, content_type=CE).events
    assert event.occurred_at == datetime(2025, 1, 15, 11, 0, tzinfo=UTC)
    assert event.conversation_id == "c-9"


def test_cloudevent_bare_canonical_type() -> None:
    [event] = handle(cloudevent(type="conversation.status_changed"), content_type=CE).events
    assert event.type == "conversation.status_changed"


@pytest.mark.parametrize(
    ("ce", "message"),
    [
        (cloudevent(specversion="0.3"), r"^specversion: expected '1.0', got '0.3'"),
        (cloudevent(id=None), r"^id: required"),
        (cloudevent(type=None), r"^type: required"),
        (cloudevent(data=None), r"^data: expected object, got null"),
        (cloudevent(data=None, data_base64="eyJ9"), r"^data_base64: binary data is not supported"),
        (cloudevent(datacontenttype="text/xml"), r"^datacontenttype: expected a JSON media type"),
        (cloudevent(time=None), r"^data\.occurred_at: required"),
        (cloudevent(time="soon"), r"^time: unrecognised time format"),
        (cloudevent(subject=None), r"^data\.conversation_id: required"),
        (
            cloudevent(data={"status": "resolved", "type": "message.created"}),
            r"^data\.type: 'message.created' does not match",
        ),
        (cloudevent(data={"status": "closed"}), r"^status: 'closed' is not one of"),
        (cloudevent(data={"status": "open", "tenant": "t9"}), r"^data\.tenant: 't9' does not match"),
    ],
)
def test_invalid_cloudevents(ce: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        handle(ce, content_type=CE)


def test_cloudevent_batch_and_its_errors_name_the_index() -> None:
    batch = [cloudevent(id=f"c{i}") for i in range(3)]
    mapped = handle(batch, content_type=CE_BATCH)
    assert len({e.id for e in mapped.events}) == 3
    batch[1] = cloudevent(id="c1", specversion="2.0")
    with pytest.raises(InvalidPayload, match=r"^\[1\]\.specversion"):
        handle(batch, content_type=CE_BATCH)


def test_cloudevent_batch_must_be_an_array_and_single_must_be_an_object() -> None:
    with pytest.raises(InvalidPayload, match="expected an event object or an array"):
        handle(cloudevent(), content_type=CE_BATCH)
    with pytest.raises(InvalidPayload, match=r"^body: expected object, got array"):
        handle([cloudevent()], content_type=CE)


def test_wrong_config_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        connector.handle(make_request(b"{}"), object())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(canonical())), json_values, st.sampled_from(["application/json", CE]))
def test_any_field_value_maps_or_is_rejected_cleanly(key: str, value: object, content_type: str) -> None:
    body = canonical(**{key: value}) if content_type != CE else cloudevent(data={**canonical(), key: value})
    error: InvalidPayload | None = None
    try:
        handle(body, content_type=content_type)
    except InvalidPayload as exc:
        error = exc
    if error is not None:
        assert error.status_code == 422
        assert ": " in error.detail


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(canonical())), json_values, st.sampled_from(["application/json", CE]))
def test_one_validation_pass_agrees_with_the_wire_round_trip(
    key: str, value: object, content_type: str
) -> None:
    """Events are checked once (msgspec.convert, the rules, one NUL search of the body): whatever
    passes must also pass checks.checked's round trip through the wire form, unchanged."""
    body = canonical(**{key: value}) if content_type != CE else cloudevent(data={**canonical(), key: value})
    try:
        mapped = handle(body, content_type=content_type)
    except InvalidPayload:
        return
    for event in mapped.events:
        assert checked(event) == event
        assert encode(checked(event)) == encode(event)


@pytest.mark.parametrize("content_type", ["application/json", CE])
def test_a_nul_in_any_text_is_refused_naming_the_field(content_type: str) -> None:
    for fields in ({"team": "sup\x00port"}, {"labels": ["vip", "b\x00d"]}, {"agent": "\x00"}):
        data = {"status": "resolved", **fields}
        body = canonical(**fields) if content_type != CE else cloudevent(data=data)
        with pytest.raises(InvalidPayload, match=rf"{next(iter(fields))}: contains a NUL character"):
            handle(body, content_type=content_type)
    with pytest.raises(InvalidPayload, match=r"^\[1\]\.team: contains a NUL character"):
        handle([canonical(id="a"), canonical(id="b", team="x\x00")])


def test_text_that_only_looks_like_an_escaped_nul_is_kept() -> None:
    # The body holds the six characters \u0000 (an escaped backslash): no NUL, nothing refused.
    [event] = handle(canonical(team="\\u0000")).events
    assert event.team == "\\u0000"
