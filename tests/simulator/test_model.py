"""The story generator: deterministic, well-formed, and shaped like the mix says."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import replace

import pytest

from services.simulator.model import DEFAULT_MIX, Scenario
from services.simulator.story import ASTERISK, CHATWOOT, TWILIO, Mix, Story
from services.simulator.vendors.chatwoot import ChatwootEvent
from shared.events import EventType
from tests.simulator.support import RUN_ID, scenario

CHATS = ("chat", "email", "whatsapp")
CALLS = ("twilio", "asterisk")


@pytest.fixture(scope="module")
def many() -> list[Story]:
    return list(scenario(seed=11).stories(3000))


def test_same_seed_same_stories() -> None:
    first = list(scenario(seed=3).stories(200))
    again = list(scenario(seed=3).stories(200))
    assert first == again
    assert first != list(scenario(seed=4).stories(200))


def test_a_story_does_not_depend_on_the_ones_before_it() -> None:
    assert scenario(seed=3).story(150) == list(scenario(seed=3).stories(200))[150]


def test_run_id_changes_ids_not_the_plot() -> None:
    a = scenario(seed=3, run_id=RUN_ID).story(5)
    b = scenario(seed=3, run_id=RUN_ID + 1).story(5)
    assert a.kind == b.kind
    assert [d.offset for d in a.deliveries] == [d.offset for d in b.deliveries]
    assert a.deliveries != b.deliveries


def test_deliveries_are_in_time_order_and_compressed(many: list[Story]) -> None:
    for story in many:
        offsets = [d.offset for d in story.deliveries]
        assert offsets == sorted(offsets)
        assert offsets[0] == 0.0
        # Minutes, not hours: the demo shows the whole life of a conversation.
        assert story.length < 20 * 60


def test_kind_mix(many: list[Story]) -> None:
    kinds = Counter(s.kind for s in many)
    total = sum(w for _, w in DEFAULT_MIX.kinds())
    for kind, weight in DEFAULT_MIX.kinds():
        assert kinds[kind] / len(many) == pytest.approx(weight / total, abs=0.03)


def test_chat_shares(many: list[Story]) -> None:
    botable = [s for s in many if s.kind in ("chat", "whatsapp")]
    bot = [s for s in botable if s.plan["bot"]]
    assert 0.28 < len(bot) / len(botable) < 0.42
    assert not any(s.plan["bot"] for s in many if s.kind == "email")
    solved_by_bot = sum(s.plan.get("outcome") == "bot_resolved" for s in bot)
    assert 0.2 < solved_by_bot / len(bot) < 0.4
    human = [s for s in many if s.kind in CHATS and s.plan.get("outcome") in ("resolved", "no_reply")]
    slow = [s for s in human if s.plan["slow"]]
    assert 0.06 < len(slow) / len(human) < 0.14
    resolved = [s for s in human if s.plan["outcome"] == "resolved"]
    surveyed = [s for s in resolved if s.plan.get("survey")]
    assert 0.72 < len(surveyed) / len(resolved) < 0.88
    answered = [s for s in surveyed if s.plan.get("ratings")]
    assert 0.38 < len(answered) / len(surveyed) < 0.52
    twice = [s for s in answered if len(s.plan["ratings"]) == 2]
    assert 0.3 < len(twice) / len(answered) < 0.5
    reopened = [s for s in resolved if s.plan.get("reopened")]
    assert 0.04 < len(reopened) / len(resolved) < 0.12


def test_first_responses_meet_the_chat_target_unless_slow(many: list[Story]) -> None:
    replied = [s for s in many if "first_response" in s.plan]
    for story in replied:
        frt = story.plan["first_response"]
        if story.plan["slow"]:
            assert 300 < frt <= 480
        else:
            assert 2 <= frt <= 181
    typical = statistics.median(s.plan["first_response"] for s in replied if not s.plan["slow"])
    assert 20 < typical < 60


def test_no_slow_replies_when_the_slow_share_is_zero() -> None:
    quick = Scenario(5, run_id=RUN_ID, mix=replace(DEFAULT_MIX, slow_share=0.0))
    assert not any(s.plan.get("first_response", 0) > 300 for s in quick.stories(1000))


def test_call_shares(many: list[Story]) -> None:
    calls = [s for s in many if s.kind in CALLS]
    outcomes = Counter(s.plan["outcome"] for s in calls)
    assert 0.08 < outcomes["abandoned"] / len(calls) < 0.16
    assert outcomes["timed_out"] / len(calls) < 0.06
    abandoned = [s for s in calls if s.plan["outcome"] == "abandoned"]
    short = [s for s in abandoned if s.plan["wait"] < 5]
    assert 0.2 < len(short) / len(abandoned) < 0.5
    answered = [s for s in calls if s.plan["outcome"] == "answered"]
    assert all(1 <= s.plan["wait"] <= 60 and 20 <= s.plan["talk"] <= 300 for s in answered)
    in_target = sum(s.plan["wait"] <= 20 for s in answered)
    assert 0.65 < in_target / len(answered) < 0.85
    assert 0.04 < sum(s.plan["transfer"] for s in answered) / len(answered) < 0.12


def test_bot_conversations_start_pending_and_hand_off(many: list[Story]) -> None:
    for story in many:
        if story.kind not in CHATS:
            continue
        created = story.deliveries[0]
        assert isinstance(created.event, ChatwootEvent)
        assert created.event.event == "conversation_created"
        assert created.event.conv.status == ("pending" if story.plan["bot"] else "open")
        statuses = [
            d.event.changes[0][2]
            for d in story.deliveries
            if isinstance(d.event, ChatwootEvent) and d.event.event == "conversation_status_changed"
        ]
        if story.plan["bot"] and story.plan.get("outcome") != "bot_resolved":
            assert statuses[0] == "open"  # the handoff
        if story.plan.get("outcome") != "bot_resolved":
            assert "resolved" in statuses


def test_each_story_uses_one_connector(many: list[Story]) -> None:
    expected = {
        "chat": CHATWOOT,
        "email": CHATWOOT,
        "whatsapp": CHATWOOT,
        "twilio": TWILIO,
        "asterisk": ASTERISK,
    }
    for story in many:
        assert {d.connector for d in story.deliveries} == {expected[story.kind]}


def test_expectations_add_up(many: list[Story]) -> None:
    expected = Counter(t for s in many for d in s.deliveries for t in d.expect)
    chats = [s for s in many if s.kind in CHATS]
    calls = [s for s in many if s.kind in CALLS]
    assert expected[EventType.CONVERSATION_CREATED] == len(chats)
    twilio_transfers = sum(s.kind == "twilio" and s.plan["transfer"] for s in calls)
    assert expected[EventType.CALL_QUEUED] == len(calls) + twilio_transfers
    assert expected[EventType.SURVEY_SUBMITTED] == sum(len(s.plan.get("ratings", ())) for s in chats)


def test_agent_breaks_and_opening() -> None:
    sc = scenario()
    opening = sc.opening()
    assert {d.connector for d in opening.deliveries} == {TWILIO, ASTERISK}
    breaks = [sc.agent_break(n) for n in range(50)]
    assert all(b is not None and len(b.deliveries) == 2 for b in breaks)
    chat_only = Scenario(1, run_id=RUN_ID, connectors={CHATWOOT})
    assert chat_only.agent_break(0) is None
    assert {s.kind for s in chat_only.stories(100)} <= set(CHATS)


def test_bad_mix_and_connectors_are_refused() -> None:
    with pytest.raises(ValueError, match="slow_share"):
        Mix(slow_share=1.5)
    with pytest.raises(ValueError, match="bot_share"):
        Mix(bot_share=float("nan"))
    with pytest.raises(ValueError, match="weight 0"):
        Mix(chat=0, email=0, whatsapp=0, twilio=0, asterisk=0)
    with pytest.raises(ValueError, match="unknown connectors"):
        Scenario(1, run_id=RUN_ID, connectors={"zendesk"})
    with pytest.raises(ValueError, match="no story kind"):
        Scenario(1, run_id=RUN_ID, mix=Mix(twilio=0, asterisk=0), connectors={TWILIO, ASTERISK})
