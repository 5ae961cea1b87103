from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ingest.connectors.asterisk import (
    AsteriskConfig,
    QueueLogError,
    QueueLogLine,
    connector,
    map_line,
    parse_line,
)
from services.ingest.connectors.base import InvalidPayload, Mapped, UnsupportedMediaType
from shared.events import Event

from .support import NOW, assert_usable, corpus_bytes, make_request

CONFIG = AsteriskConfig()
CALL = "asterisk:default:1736940100.101"


def post(body: bytes | str, *, config: AsteriskConfig = CONFIG, content_type: str = "text/plain") -> Mapped:
    raw = body.encode() if isinstance(body, str) else body
    mapped = connector.handle(make_request(raw, content_type=content_type), config)
    assert_usable(mapped, prefix="asterisk")
    return mapped


def one(line: str, config: AsteriskConfig = CONFIG) -> Event:
    mapped = post(line + "\n", config=config)
    assert mapped.ignored == []
    [event] = mapped.events
    return event


def test_corpus_day() -> None:
    mapped = post(corpus_bytes("asterisk", "queue_log.txt"))
    assert [e.type for e in mapped.events] == [
        "agent.status_changed",  # ADDMEMBER
        "agent.status_changed",  # UNPAUSE
        "call.queued",
        "call.answered",
        "call.ended",
        "call.queued",
        "call.abandoned",
        "call.queued",
        "call.timed_out",
        "agent.status_changed",  # PAUSE
    ]
    assert mapped.ignored == ["ignored_event:QUEUESTART", "ringnoanswer"]
    assert {e.source for e in mapped.events} == {"asterisk:default"}
    assert {e.channel for e in mapped.events} == {"phone"}


def test_enterqueue_is_the_offer() -> None:
    event = one("1736940100|1736940100.101|support|NONE|ENTERQUEUE||+15552223333|1")
    assert event.type == "call.queued"
    assert event.conversation_id == CALL
    assert event.queue == "support"
    assert event.customer == "+15552223333"
    assert event.agent is None
    assert event.occurred_at == datetime(2025, 1, 15, 11, 21, 40, tzinfo=UTC)


def test_connect_carries_the_queue_wait() -> None:
    event = one("1736940120|1736940100.101|support|SIP/8007|CONNECT|20|1736940118.102|4")
    assert (event.type, event.wait_seconds, event.agent) == ("call.answered", 20, "SIP/8007")
    assert event.conversation_id == CALL


@pytest.mark.parametrize(("kind", "by"), [("COMPLETECALLER", "caller"), ("COMPLETEAGENT", "agent")])
def test_complete_gives_talk_time_not_hold(kind: str, by: str) -> None:
    event = one(f"1736940300|1736940100.101|support|SIP/8007|{kind}|20|180|1")
    assert event.type == "call.ended"
    assert event.talk_seconds == 180
    assert event.hold_seconds is None
    assert event.wait_seconds is None
    assert event.attributes == {"reason": by}


def test_abandon() -> None:
    event = one("1736940460|1736940400.201|support|NONE|ABANDON|1|1|60")
    assert (event.type, event.wait_seconds) == ("call.abandoned", 60)


@pytest.mark.parametrize(
    ("line", "wait", "attributes"),
    [
        ("EXITWITHTIMEOUT|1|1|300", 300, {"reason": "timeout"}),
        ("EXITEMPTY|1|1|45", 45, {"reason": "exitempty"}),
        ("EXITWITHKEY|5|2|3|75", 75, {"reason": "key", "key": "5"}),
    ],
)
def test_exits_are_timeouts(line: str, wait: float, attributes: dict[str, str]) -> None:
    event = one(f"1736940800|1736940500.301|sales|NONE|{line}")
    assert event.type == "call.timed_out"
    assert event.wait_seconds == wait
    assert event.attributes == attributes


@pytest.mark.parametrize(
    ("line", "attributes"),
    [
        ("TRANSFER|2001|from-internal|12|95|1", {"reason": "transfer", "target": "2001@from-internal"}),
        (
            "BLINDTRANSFER|2001|from-internal|12|95|1",
            {"reason": "blindtransfer", "target": "2001@from-internal"},
        ),
        ("ATTENDEDTRANSFER|BRIDGE|1736940990.7|12|95|1", {"reason": "attendedtransfer"}),
    ],
)
def test_transfers_carry_call_time(line: str, attributes: dict[str, str]) -> None:
    event = one(f"1736941000|1736940100.101|support|SIP/8007|{line}")
    assert event.type == "call.transferred"
    assert event.talk_seconds == 95
    assert event.agent == "SIP/8007"
    assert event.attributes == attributes


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("AGENTLOGIN", "available"),
        ("AGENTCALLBACKLOGIN", "available"),
        ("ADDMEMBER", "available"),
        ("UNPAUSE", "available"),
        ("PAUSE", "away"),
        ("AGENTLOGOFF", "offline"),
        ("AGENTCALLBACKLOGOFF", "offline"),
        ("REMOVEMEMBER", "offline"),
    ],
)
def test_agent_events(kind: str, status: str) -> None:
    event = one(f"1736939000|NONE|support|Agent/1001|{kind}|")
    assert event.type == "agent.status_changed"
    assert event.agent_status == status
    assert event.agent == "Agent/1001"
    assert event.conversation_id == "asterisk:default:agent:Agent/1001"
    assert event.queue == "support"


def test_agent_event_without_agent_is_malformed() -> None:
    with pytest.raises(InvalidPayload, match=r"^line 1: agent: required for PAUSE"):
        post("1736939000|NONE|support|NONE|PAUSE|\n")


def test_ringnoanswer_is_ignored_but_its_milliseconds_are_read() -> None:
    line = "1736940105|1736940100.101|support|SIP/8007|RINGNOANSWER|15000"
    assert parse_line(line, UTC).ring_seconds == 15.0
    assert parse_line(line.replace("15000", "1500"), UTC).ring_seconds == 1.5
    mapped = post(line)
    assert (mapped.events, mapped.ignored) == ([], ["ringnoanswer"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1736938800|NONE|NONE|NONE|QUEUESTART|", "ignored_event:QUEUESTART"),
        ("1736938800|NONE|NONE|NONE|CONFIGRELOAD|", "ignored_event:CONFIGRELOAD"),
        ("1736938800|NONE|NONE|Agent/1001|PAUSEALL|", "ignored_event:PAUSEALL"),
        ("1736938800|1736940100.101|support|NONE|RINGCANCELED|500", "ignored_event:RINGCANCELED"),
        ("1736938800|1736940100.101|support|NONE|SOMETHINGNEW|1|2", "unknown_event:SOMETHINGNEW"),
        ("1736938800|NONE|support|NONE|ENTERQUEUE||+1555|1", "no_callid"),
    ],
)
def test_ignored_lines(line: str, reason: str) -> None:
    mapped = post(line)
    assert (mapped.events, mapped.ignored) == ([], [reason])


def test_realtime_variant_uses_the_configured_zone() -> None:
    config = AsteriskConfig(timezone="Europe/Berlin")
    mapped = post(corpus_bytes("asterisk", "queue_log_realtime.txt"), config=config)
    queued, answered, ended = mapped.events
    assert queued.occurred_at == datetime(2012, 7, 3, 13, 27, 23, 896208, tzinfo=UTC)  # CEST = UTC+2
    assert queued.customer == "0612345678"
    assert answered.wait_seconds == 7
    assert answered.agent == "Agent/3001"
    assert ended.talk_seconds == 134
    assert ended.occurred_at == datetime(2012, 7, 3, 13, 29, 45, 1, tzinfo=UTC)


def test_realtime_variant_defaults_to_utc() -> None:
    event = one("2012-01-03 15:27:23|1341322043.4|q1|NONE|ENTERQUEUE||0612345678|1||")
    assert event.occurred_at == datetime(2012, 1, 3, 15, 27, 23, tzinfo=UTC)


def test_same_line_same_id_and_padding_does_not_matter() -> None:
    line = "1736940120|1736940100.101|support|SIP/8007|CONNECT|20|1736940118.102|4"
    first = one(line).id
    assert one(line).id == first
    assert one(line + "||").id == first
    assert one(line.replace("|20|", "|21|")).id != first


def test_resent_body_maps_to_the_same_ids() -> None:
    body = corpus_bytes("asterisk", "queue_log.txt")
    assert [e.id for e in post(body).events] == [e.id for e in post(body).events]


def test_source_name_namespaces_conversations_and_ids() -> None:
    line = "1736940100|1736940100.101|support|NONE|ENTERQUEUE||+15552223333|1"
    default = one(line)
    pbx2 = one(line, AsteriskConfig(source_name="pbx-2"))
    assert pbx2.source == "asterisk:pbx-2"
    assert pbx2.conversation_id == "asterisk:pbx-2:1736940100.101"
    assert pbx2.id != default.id


def test_crlf_and_blank_lines() -> None:
    body = "\r\n1736940100|1736940100.101|support|NONE|ENTERQUEUE||+1555|1\r\n\r\n   \n"
    assert [e.type for e in post(body).events] == ["call.queued"]


def test_empty_body_is_nothing() -> None:
    mapped = post(b"")
    assert (mapped.events, mapped.ignored) == ([], [])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "1736940100|1736940100.101|support|NONE",
            r"^line 2: expected at least 5 '\|'-separated fields, got 4",
        ),
        ("yesterday|1736940100.101|support|NONE|ENTERQUEUE||x|1", r"^line 2: time: unrecognised time format"),
        (
            "1736940120|1.1|support|SIP/8007|CONNECT|soon|x|4",
            r"^line 2: data1: expected seconds for CONNECT, got 'soon'",
        ),
        ("1736940120|1.1|support|SIP/8007|CONNECT||x|4", r"^line 2: data1: expected seconds"),
        ("1736940460|1.1|support|NONE|ABANDON|1|1", r"^line 2: data3: expected seconds for ABANDON, got ''"),
        ("1736940460|1.1|support|NONE|ABANDON|1|1|-4", r"^line 2: data3: -4 seconds is out of range"),
        ("946684700|1.1|support|NONE|ABANDON|1|1|4", r"^line 2: time: .*outside accepted range"),
        (
            "1736940100|1.1|" + "q" * 300 + "|NONE|ENTERQUEUE||x|1",
            r"^line 2: queue: Expected str of length <= 200",
        ),
    ],
)
def test_malformed_line_rejects_the_whole_request(line: str, expected: str) -> None:
    good = "1736940100|1736940100.101|support|NONE|ENTERQUEUE||+15552223333|1"
    later = "1736940101|1736940101.102|support|NONE|ENTERQUEUE||+15552223334|1"
    with pytest.raises(InvalidPayload, match=expected) as info:
        post(f"{good}\n{line}\n{later}\n")
    assert info.value.status_code == 422


def test_invalid_utf8_names_the_line() -> None:
    body = b"1736940100|1.1|support|NONE|ENTERQUEUE||x|1\n1736940100|1.2|support|NONE|ENTERQUEUE||\xff|1\n"
    with pytest.raises(InvalidPayload, match=r"^line 2: invalid UTF-8") as info:
        post(body)
    assert info.value.reason == "bad_encoding"


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream", None])
def test_wrong_content_type(content_type: str | None) -> None:
    request = make_request(b"1736940100|1.1|q|NONE|ENTERQUEUE||x|1", content_type=content_type)
    with pytest.raises(UnsupportedMediaType):
        connector.handle(request, CONFIG)


def test_config_validation() -> None:
    assert AsteriskConfig(timezone="America/New_York").zone == ZoneInfo("America/New_York")
    for bad in ({"timezone": "Mars/Olympus"}, {"timezone": "../etc/passwd"}, {"source_name": "has space"}):
        with pytest.raises(ValidationError):
            AsteriskConfig.model_validate(bad)


def test_parse_line_and_map_line_for_the_file_follower() -> None:
    parsed = parse_line(
        "1736940120|1736940100.101|support|SIP/8007|connect|20|1736940118.102|4\n", UTC, now=NOW
    )
    assert isinstance(parsed, QueueLogLine)
    assert parsed.event == "CONNECT"
    assert (parsed.callid, parsed.queue, parsed.agent) == ("1736940100.101", "support", "SIP/8007")
    assert parsed.data == ("20", "1736940118.102", "4")
    assert parsed.datum(1) == "20"
    assert parsed.datum(9) == ""
    assert parsed.ring_seconds is None
    event = map_line(parsed, tenant="t1", config=CONFIG)
    assert isinstance(event, Event)
    assert event.type == "call.answered"
    with pytest.raises(QueueLogError, match="at least 5"):
        parse_line("only|three|fields", UTC)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(corpus_bytes("asterisk", "queue_log.txt").decode().splitlines()),
    st.integers(min_value=0, max_value=8),
    st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\n"), max_size=15),
)
def test_any_field_value_maps_or_is_rejected_cleanly(line: str, index: int, value: str) -> None:
    fields = line.split("|")
    fields[min(index, len(fields) - 1)] = value
    error: InvalidPayload | None = None
    try:
        post("|".join(fields))
    except InvalidPayload as exc:
        error = exc
    if error is not None:
        assert error.status_code == 422
        assert error.detail.startswith("line 1: ")
