"""Every payload the simulator generates is accepted by the real ingest connectors and maps
to exactly the canonical events its story intends."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import Counter
from dataclasses import replace
from urllib.parse import parse_qsl

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.connectors import CONNECTORS
from services.ingest.connectors.base import BadSignature, StaleRequest
from services.simulator.story import ASTERISK, CHATWOOT, TWILIO
from services.simulator.wire import Credentials, prepare
from shared.events import EventType, problems
from tests.simulator.support import (
    BASE_URL,
    CONFIGS,
    CREDS,
    ORIGIN,
    TENANT,
    TENANTS,
    Handled,
    handle,
    handle_all,
    request_for,
    scenario,
)

CHATS = ("chat", "email", "whatsapp")


@pytest.fixture(scope="module")
def handled() -> list[Handled]:
    sc = scenario(seed=21)
    breaks = [b for b in (sc.agent_break(n) for n in range(30)) if b is not None]
    # Breaks come about once a minute; conversations and calls five a second.
    return handle_all([sc.opening(), *sc.stories(300)]) + handle_all(breaks, ORIGIN + 30, spacing=60)


def test_every_delivery_maps_to_its_intended_events(handled: list[Handled]) -> None:
    assert len(handled) > 2000
    for h in handled:
        assert tuple(e.type for e in h.mapped.events) == h.delivery.expect, (h.story.kind, h.prepared.summary)
        for event in h.mapped.events:
            assert problems(event) == []
            assert event.tenant == TENANT
        # Whatever a connector skipped, it knew by name: the simulator sends no unknown events.
        assert not any(r.startswith("unknown") for r in h.mapped.ignored), h.mapped.ignored


def test_counts_match_the_stories(handled: list[Handled]) -> None:
    stories = {h.story.number: h.story for h in handled if h.story.kind in (*CHATS, "twilio", "asterisk")}
    got = Counter(e.type for h in handled for e in h.mapped.events)
    chats = [s for s in stories.values() if s.kind in CHATS]
    calls = [s for s in stories.values() if s.kind in ("twilio", "asterisk")]
    assert len(stories) == 300
    assert got[EventType.CONVERSATION_CREATED] == len(chats)
    twilio_transfers = sum(s.kind == "twilio" and s.plan["transfer"] for s in calls)
    assert got[EventType.CALL_QUEUED] == len(calls) + twilio_transfers
    assert got[EventType.SURVEY_SUBMITTED] == sum(len(s.plan.get("ratings", ())) for s in chats)
    outcomes = Counter(s.plan["outcome"] for s in calls)
    assert got[EventType.CALL_ABANDONED] == outcomes["abandoned"]
    assert got[EventType.CALL_TIMED_OUT] == outcomes["timed_out"]
    assert got[EventType.CALL_ANSWERED] == outcomes["answered"] + twilio_transfers


def test_event_ids_are_unique_except_the_vendor_duplicates_meant_to_dedupe(handled: list[Handled]) -> None:
    ids = Counter(e.id for h in handled for e in h.mapped.events)
    duplicated = {i: n for i, n in ids.items() if n > 1}
    # A transferred Twilio call completes two tasks; the connector keys call.ended on the call.
    transfers = {h.story.number for h in handled if h.story.kind == "twilio" and h.story.plan["transfer"]}
    assert len(duplicated) == len(transfers)
    assert set(duplicated.values()) <= {2}


def test_conversations_and_calls_keep_one_id_each(handled: list[Handled]) -> None:
    per_story: dict[int, set[str]] = {}
    for h in handled:
        if h.story.kind in (*CHATS, "twilio", "asterisk"):
            per_story.setdefault(h.story.number, set()).update(e.conversation_id for e in h.mapped.events)
    assert all(len(ids) == 1 for ids in per_story.values())
    assert len({next(iter(ids)) for ids in per_story.values()}) == len(per_story)


def test_vendor_times_are_the_planned_send_times(handled: list[Handled]) -> None:
    for h in handled:
        for event in h.mapped.events:
            sent = h.origin + h.delivery.offset
            # Whole-second vendors (Twilio, Asterisk, epoch ints) truncate; never later than sending.
            assert sent - 1.0 <= event.occurred_at.timestamp() <= sent + 1e-3


def test_survey_answers_share_the_survey_and_carry_the_rating(handled: list[Handled]) -> None:
    surveys = [e for h in handled for e in h.mapped.events if e.type == EventType.SURVEY_SUBMITTED]
    assert surveys
    assert all(e.survey == "csat" and e.score is not None and 1 <= e.score <= 5 for e in surveys)
    per_survey = Counter(e.survey_id for e in surveys)
    assert 1 in per_survey.values()
    assert 2 in per_survey.values()  # rating, then comment


def test_bots_and_automation_are_never_human_replies(handled: list[Handled]) -> None:
    messages = [e for h in handled for e in h.mapped.events if e.type == EventType.MESSAGE_CREATED]
    authors = Counter((e.author, e.automated, e.private) for e in messages)
    assert authors[("bot", None, False)] > 0
    assert authors[("system", "template", False)] > 0
    assert authors[("system", "rule", False)] > 0
    assert authors[("system", "survey", False)] > 0
    assert authors[("agent", "campaign", False)] > 0
    assert authors[("agent", None, True)] > 0  # private notes


def test_signatures_are_what_each_vendor_computes(handled: list[Handled]) -> None:
    secret = TENANTS.tenants[TENANT].connectors[CHATWOOT]["secret"].encode()
    token = TENANTS.tenants[TENANT].connectors[TWILIO]["auth_token"].encode()
    seen = set()
    for h in handled:
        headers = h.prepared.headers_at(h.origin + h.delivery.offset)
        seen.add(h.delivery.connector)
        if h.delivery.connector == CHATWOOT:
            stamp = headers["X-Chatwoot-Timestamp"]
            mac = hmac.new(secret, f"{stamp}.".encode() + h.prepared.body, hashlib.sha256).hexdigest()
            assert headers["X-Chatwoot-Signature"] == f"sha256={mac}"
            assert len(headers["X-Chatwoot-Delivery"]) == 36
        elif h.delivery.connector == TWILIO:
            form = parse_qsl(h.prepared.body.decode(), keep_blank_values=True)
            data = h.prepared.url + "".join(k + v for k, v in sorted(form))
            mac = base64.b64encode(hmac.new(token, data.encode(), hashlib.sha1).digest()).decode()
            assert headers["X-Twilio-Signature"] == mac
            assert h.prepared.url == f"{BASE_URL}/v1/webhooks/twilio/{TENANT}"
        else:
            assert headers["Authorization"] == "Bearer demo-ingest-token"
            assert headers["Content-Type"].startswith("text/plain")
    assert seen == {CHATWOOT, TWILIO, ASTERISK}


@pytest.mark.parametrize("connector", [CHATWOOT, TWILIO])
def test_connectors_refuse_a_tampered_body(handled: list[Handled], connector: str) -> None:
    h = next(h for h in handled if h.delivery.connector == connector)
    tampered = replace(h.prepared, body=h.prepared.body.replace(b"1", b"2"))
    # Re-signing Chatwoot would sign the tampered body: keep the original signature instead.
    headers = h.prepared.headers_at(h.origin + h.delivery.offset)
    request = request_for(tampered, h.origin + h.delivery.offset)
    request = replace(request, headers={k.lower(): v for k, v in headers.items()})
    with pytest.raises(BadSignature):
        CONNECTORS[connector][0].handle(request, CONFIGS[connector])


def test_a_retry_is_signed_afresh_so_it_is_never_stale() -> None:
    delivery = next(d for d in scenario().story(0).deliveries if d.connector == CHATWOOT)
    prepared = prepare(delivery, ORIGIN, BASE_URL, CREDS)
    first = ORIGIN + delivery.offset
    late = first + 600  # ten minutes of backoff later
    CONNECTORS[CHATWOOT][0].handle(request_for(prepared, late), CONFIGS[CHATWOOT])
    # The same delivery with the first attempt's headers would be refused as a replay.
    replayed = replace(request_for(prepared, first), received_at=request_for(prepared, late).received_at)
    with pytest.raises(StaleRequest):
        CONNECTORS[CHATWOOT][0].handle(replayed, CONFIGS[CHATWOOT])


def test_chatwoot_bodies_look_like_chatwoot() -> None:
    sc = scenario(seed=2)
    bodies = [
        msgspec.json.decode(prepare(d, ORIGIN, BASE_URL, CREDS).body)
        for s in sc.stories(50)
        for d in s.deliveries
        if d.connector == CHATWOOT
    ]
    messages = [b for b in bodies if b["event"].startswith("message_")]
    assert all(b["created_at"].endswith("Z") and len(b["created_at"]) == 24 for b in messages)
    assert all(b["account"]["id"] == 1 and "display_id" not in b for b in messages)
    conversations = [b for b in bodies if b["event"].startswith("conversation_")]
    assert all(isinstance(b["created_at"], int) and isinstance(b["updated_at"], float) for b in conversations)
    changes = [b for b in conversations if b["event"] != "conversation_created"]
    assert all(isinstance(b["changed_attributes"], list) for b in changes)


def test_an_unsigned_tenant_sends_no_signature() -> None:
    creds = Credentials.from_tenants(TENANTS, "acme")
    assert creds.connectors == {CHATWOOT}
    story = scenario().story(0)
    delivery = next(d for d in story.deliveries if d.connector == CHATWOOT)
    headers = prepare(delivery, ORIGIN, BASE_URL, creds).headers_at(ORIGIN)
    assert "X-Chatwoot-Signature" not in headers
    assert "X-Chatwoot-Delivery" in headers


def test_unknown_tenant_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'nobody' is not in the tenants file"):
        Credentials.from_tenants(TENANTS, "nobody")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), number=st.integers(0, 10**6 - 1))
def test_any_seed_and_story_is_accepted(seed: int, number: int) -> None:
    story = scenario(seed=seed).story(number)
    for delivery in story.deliveries:
        _, mapped = handle(delivery)
        assert tuple(e.type for e in mapped.events) == delivery.expect
