"""Absurd canonical events through ``POST /v1/events`` meet exactly the documented rule.

docs/events.md and ``shared.events.problems()`` say: times outside [2000-01-01, now + 1 day]
are refused; durations are 0 … 30 days; at most 50 labels of 1 … 100 characters; values the
KPIs depend on (status, direction, author, survey kind, score range) must be known, while open
enums (channel, automation, agent status) and unknown event types pass through (an unknown
channel becoming ``other``); ``tenant`` is the authenticated one. Each generated event breaks
(or stretches) one of these, and the answer must be that rule: a 422 problem whose detail
starts with the field's name, or a 202 whose event is then read back from Kafka carrying the
documented value.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.events import (
    MAX_DURATION_SECONDS,
    MAX_ID_LEN,
    MAX_LABEL_LEN,
    MAX_LABELS,
    SURVEY_SCALES,
    AgentStatus,
    Author,
    Automation,
    Channel,
    Direction,
    Event,
    EventType,
    Status,
    SurveyKind,
)
from tests.fuzz.conftest import INGEST_TOKEN, MAX_BODY, IngestUnderTest, wait_ready
from tests.fuzz.support import CHECKS, assert_problem_on_error, fuzz_settings, in_thread, read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
# Generated times this close to "now + 1 day" are skipped: the server's clock runs on.
MARGIN: Final = timedelta(minutes=10)
AUTH: Final = {"Authorization": f"Bearer {INGEST_TOKEN}"}


@dataclass(frozen=True)
class Rule:
    """One event to send and the documented answer: refused naming ``field``, or accepted."""

    why: str
    changes: dict[str, Any]
    field: str | None  # None: accepted
    # On an accepted event read back from Kafka: what the documented rule says it carries.
    expect: Callable[[Event], bool] = lambda event: True
    status: int = 422  # when refused


def base(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": f"rule-{uuid.uuid4().hex}",
        "source": "fuzz:rules",
        "type": "message.created",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "conversation_id": f"conv-{uuid.uuid4().hex[:8]}",
        "channel": "chat",
        "direction": "inbound",
        "author": "customer",
    }
    event.update(changes)
    return event


# --- times -----------------------------------------------------------------------------------


def _time_case(when: datetime, spelled: Any, how: str) -> Rule:
    now = datetime.now(UTC)
    ok = EARLIEST <= when <= now + timedelta(days=1)
    return Rule(f"time {how} {when.isoformat()}", {"occurred_at": spelled}, None if ok else "occurred_at",
                lambda e: e.occurred_at == when)  # fmt: skip


@st.composite
def times(draw: st.DrawFn) -> Rule:
    now = datetime.now(UTC)
    when = draw(
        st.sampled_from(
            [
                datetime(1970, 1, 1, tzinfo=UTC),
                datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
                EARLIEST,
                now + timedelta(hours=12),
                now + timedelta(days=2),
                datetime(3000, 1, 1, tzinfo=UTC),
                datetime(9999, 12, 31, tzinfo=UTC),
            ]
        )
        | st.datetimes(datetime(1900, 1, 1), datetime(3000, 1, 1), timezones=st.just(UTC)).map(
            lambda t: t.replace(microsecond=0)
        )
    )
    when = when.replace(microsecond=0)
    boundary = now + timedelta(days=1)
    if abs(when - boundary) < MARGIN:
        when = boundary - 2 * MARGIN
    spelling = draw(st.sampled_from(["iso", "offset", "epoch", "epoch-ms"]))
    # Documented: epoch numbers above 1e11 are milliseconds (1e11 s would be the year 5138).
    if spelling == "epoch" and 0 <= when.timestamp() < 1e11:
        return _time_case(when, int(when.timestamp()), "as epoch seconds")
    if spelling == "epoch-ms" and when.timestamp() * 1000 > 1e11:
        return _time_case(when, int(when.timestamp()) * 1000, "as epoch milliseconds")
    if spelling == "offset":
        return _time_case(when, when.astimezone(timezone(timedelta(hours=-5))).isoformat(), "at -05:00")
    return _time_case(when, when.isoformat().replace("+00:00", "Z"), "as RFC 3339")


# --- durations -------------------------------------------------------------------------------

DURATIONS: Final = ["wait_seconds", "talk_seconds", "hold_seconds", "wrap_seconds"]


@st.composite
def durations(draw: st.DrawFn) -> Rule:
    field = draw(st.sampled_from(DURATIONS))
    value = draw(
        st.sampled_from([-1, -0.001, 0, MAX_DURATION_SECONDS, MAX_DURATION_SECONDS + 1, -1e12, 1e300])
        | st.floats(-1e7, 1e7, allow_nan=False)
        | st.integers(-(10**7), 10**7)
    )
    ok = 0 <= value <= MAX_DURATION_SECONDS
    changes = {"type": "call.ended", "channel": "phone", field: value}
    return Rule(f"{field}={value}", changes, None if ok else field, lambda e: getattr(e, field) == value)


# --- enums -----------------------------------------------------------------------------------

CLOSED: Final[dict[str, frozenset[str]]] = {
    "status": frozenset(Status),
    "direction": frozenset(Direction),
    "author": frozenset(Author),
    "survey": frozenset(SurveyKind),
}
OPEN: Final[dict[str, frozenset[str]]] = {
    "automated": frozenset(Automation),
    "agent_status": frozenset(AgentStatus),
}
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)


@st.composite
def enums(draw: st.DrawFn) -> Rule:
    kind = draw(st.sampled_from(["closed", "open", "channel", "type"]))
    if kind == "closed":
        field = draw(st.sampled_from(sorted(CLOSED)))
        value = draw(st.sampled_from(sorted(CLOSED[field])) | names)
        changes: dict[str, Any] = {field: value}
        if field == "survey":  # a known kind needs a score on its scale
            changes.update(type="survey.submitted", score=SURVEY_SCALES.get(value, (1, 1))[0])
        ok = value in CLOSED[field]
        return Rule(
            f"{field}={value!r}", changes, None if ok else field, lambda e: getattr(e, field) == value
        )
    if kind == "open":
        field = draw(st.sampled_from(sorted(OPEN)))
        value = draw(st.sampled_from(sorted(OPEN[field])) | names)
        changes = {field: value}
        if field == "agent_status":
            changes.update(type="agent.status_changed", agent="agent-7")
        return Rule(
            f"open {field}={value!r} passes through", changes, None, lambda e: getattr(e, field) == value
        )
    if kind == "channel":
        value = draw(st.sampled_from(sorted(Channel)) | names)
        stored = value if value in set(Channel) else "other"
        return Rule(f"channel={value!r}", {"channel": value}, None, lambda e: e.channel == stored)
    value = draw(
        names.filter(lambda t: t not in set(EventType)) | st.sampled_from(["", "t" * (MAX_ID_LEN + 1)])
    )
    ok = 1 <= len(value) <= MAX_ID_LEN
    return Rule(f"unknown type {value!r}", {"type": value}, None if ok else "type", lambda e: e.type == value)


# --- labels, scores, tenant ------------------------------------------------------------------


@st.composite
def labels(draw: st.DrawFn) -> Rule:
    count = draw(st.sampled_from([0, 1, MAX_LABELS, MAX_LABELS + 1, 500, 2000]) | st.integers(0, 80))
    length = draw(st.sampled_from([0, 1, 5, MAX_LABEL_LEN, MAX_LABEL_LEN + 1]) | st.integers(1, 120))
    # Distinct when long enough; a label set may repeat a label (no rule forbids it).
    values = [(f"{i:04d}" + "x" * length)[:length] for i in range(count)]
    ok = len(values) <= MAX_LABELS and all(1 <= len(v) <= MAX_LABEL_LEN for v in values)
    changes = {"type": "conversation.labels_changed", "labels": values}
    return Rule(
        f"{len(values)} labels of {length}", changes, None if ok else "labels", lambda e: e.labels == values
    )


@st.composite
def scores(draw: st.DrawFn) -> Rule:
    survey = draw(st.sampled_from(sorted(SURVEY_SCALES)))
    score = draw(st.integers(-3, 13) | st.sampled_from([-(2**63), 2**63 - 1]))
    low, high = SURVEY_SCALES[survey]
    changes = {"type": "survey.submitted", "survey": survey, "score": score}
    return Rule(
        f"{survey} {score}", changes, None if low <= score <= high else "score", lambda e: e.score == score
    )


@st.composite
def tenants(draw: st.DrawFn) -> Rule:
    tenant = draw(st.sampled_from(["t1", "t2", "legacy", "T1", ""]))
    return Rule(f"tenant={tenant!r}", {"tenant": tenant}, None if tenant == "t1" else "tenant")


CASES: Final = st.one_of(times(), durations(), enums(), labels(), scores(), tenants())


def test_event_rules(ingest: IngestUnderTest) -> None:
    wait_ready(ingest.contract)
    operation = ingest.contract["/v1/events"]["POST"]
    accepted: dict[str, Rule] = {}
    refused: list[str] = []

    @fuzz_settings(400)
    @given(case=CASES)
    def fuzz(case: Rule) -> None:
        body = base(**case.changes)
        size = len(json.dumps(body))
        assume(not MAX_BODY * 0.8 < size < MAX_BODY * 1.2)  # whichever JSON spacing is used
        if size > MAX_BODY:
            case = Rule(f"{case.why}, {size} bytes", case.changes, "body", status=413)
        sent = operation.Case(body=body, media_type="application/json")
        response = sent.call(headers=AUTH)
        sent.validate_response(response, checks=CHECKS, headers=AUTH)
        assert_problem_on_error(response)
        if case.field is None:
            assert response.status_code == 202, (case.why, response.text[:300])
            [event_id] = response.json()["ids"]
            accepted[event_id] = case
        else:
            assert response.status_code == case.status, (case.why, response.status_code, response.text[:300])
            detail = response.json()["detail"]
            assert detail.startswith(case.field), (case.why, detail)
            refused.append(case.field)

    fuzz()
    assert len(accepted) > 50 and len(refused) > 50, (len(accepted), len(refused))
    assert set(refused) >= {"occurred_at", "labels", "score", "tenant", "body"}, set(refused)
    published = in_thread(
        lambda: read_events(ingest.settings.kafka_bootstrap, ingest.settings.events_topic, set(accepted))
    )
    by_id = {event.id: event for event in published}
    for event_id, case in accepted.items():
        event = by_id.get(event_id)
        assert event is not None, f"acknowledged but not on Kafka: {case.why}"
        assert event.tenant == "t1"
        assert case.expect(event), (case.why, event)
