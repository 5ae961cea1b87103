"""Turn the aggregator's stored state into something a person can read.

The API must not import the aggregator, so the msgpack state is decoded untyped into
plain dicts and lists (msgspec gives datetimes back for the timestamp extension). Epoch
seconds of the walk become datetimes. The summary repeats the walk's simplest rules from
its stored fields only; the timeline and the facts remain the source of truth.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec

# Walk fields holding epoch seconds.
_TIME_SUFFIXES: Final = ("_at", "_since", "_start", "_deadline")
# Step fields that repeat the row or are internal.
_STEP_HIDDEN: Final = frozenset({"tenant", "conversation_id", "t"})
_FACT_FIELDS: Final = ("measure", "minute", "channel", "team", "agent", "labels", "value")
_CLOCK_TIMES: Final = ("started_at", "deadline", "at_risk_at", "stopped_at")
# A first-response clock's outcome as the summary words it.
_FIRST_RESPONSE_SLA: Final = {
    "met": "met",
    "breached": "breached",
    "cancelled": "not_needed",
    "running": "pending",
    "paused": "paused",
}


def _time(value: Any) -> Any:
    return (
        datetime.fromtimestamp(value, UTC)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else value
    )


def _event(step: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": step.get("id"), "type": step.get("type"), "time": step.get("occurred_at")}
    out.update(
        (k, v) for k, v in step.items() if k not in _STEP_HIDDEN and k not in ("id", "type", "occurred_at")
    )
    return out


def _facts(walk: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for key, value in walk.items():
        if key.endswith(_TIME_SUFFIXES):
            facts[key] = _time(value)
        elif key == "last" and isinstance(value, list) and len(value) == 3:
            facts[key] = {"time": _time(value[0]), "order": value[1], "event_id": value[2]}
        elif key == "surveys" and isinstance(value, dict):
            facts[key] = {sid: _time(v[0]) if isinstance(v, list) and v else v for sid, v in value.items()}
        elif key == "statuses" and isinstance(value, list):
            facts[key] = [
                {"time": _time(v[0]), "status": v[1]} for v in value if isinstance(v, list) and len(v) == 2
            ]
        elif key == "turns" and isinstance(value, list):
            facts[key] = [
                {"asked_at": _time(v[0]), "answered_at": _time(v[1]), "replier": v[2]}
                for v in value
                if isinstance(v, list) and len(v) == 3
            ]
        else:
            facts[key] = value
    return facts


def _verdict(key: str, raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, list) or len(raw) != len(_FACT_FIELDS):
        return None
    fact = dict(zip(_FACT_FIELDS, raw, strict=True))
    fact["minute"] = _time(fact["minute"])
    clock, _, verdict = key.partition("/")
    return {"clock": clock, "verdict": verdict, **fact}


def _sla_view(raw: Any) -> dict[str, Any]:
    """The SLA clocks as last judged, and the verdicts counted in the KPI buckets."""
    sla: dict[str, Any] = raw if isinstance(raw, dict) else {}
    clocks = []
    for clock in sla.get("clocks") or ():
        if isinstance(clock, dict):
            clocks.append({**clock, **{k: _time(clock.get(k)) for k in _CLOCK_TIMES}})
    raw_emitted = sla.get("emitted")
    emitted: dict[str, Any] = raw_emitted if isinstance(raw_emitted, dict) else {}
    verdicts = [v for k, raw_fact in sorted(emitted.items()) if (v := _verdict(k, raw_fact)) is not None]
    return {
        "policy": sla.get("policy"),
        "policy_version": sla.get("version"),
        "clocks": clocks,
        "verdicts": verdicts,
    }


def _seconds(end: Any, start: Any) -> float | None:
    if isinstance(end, int | float) and isinstance(start, int | float):
        return max(float(end) - float(start), 0.0)
    return None


def _first_response_sla(sla: dict[str, Any], now: datetime) -> str:
    clock = next((c for c in sla["clocks"] if c.get("kind") == "first_response"), None)
    if clock is None:
        return "none"
    outcome = _FIRST_RESPONSE_SLA.get(clock.get("outcome", ""), "none")
    deadline = clock.get("deadline")
    if outcome == "pending" and isinstance(deadline, datetime) and deadline < now:
        return "breach_pending"  # judged before the deadline; the aggregator's timer is due
    return outcome


def summary(walk: dict[str, Any], sla: dict[str, Any], now: datetime) -> dict[str, Any]:
    if walk.get("is_call"):
        answered, left = walk.get("answered_at"), walk.get("left_queue_at")
        outcome = (
            "answered"
            if answered is not None
            else "left_queue"
            if left is not None
            else "in_queue"
            if walk.get("queued_at") is not None
            else "not_queued"
        )
        return {"kind": "call", "outcome": outcome, "wait_seconds": _seconds(left, walk.get("queued_at"))}
    start = walk.get("frt_start") if walk.get("frt_start") is not None else walk.get("created_at")
    first_resolved = walk.get("first_resolved_at")
    return {
        "kind": "conversation",
        "first_response_seconds": _seconds(walk.get("first_response_at"), start),
        "first_response_sla": _first_response_sla(sla, now),
        "first_resolution_seconds": _seconds(first_resolved, walk.get("created_at")),
        "one_touch": first_resolved is not None and walk.get("human_messages", 0) <= 1,
        "abandoned": first_resolved is not None
        and walk.get("first_inbound_at") is not None
        and not walk.get("replied_after_customer", False),
    }


def present_state(data: bytes, now: datetime) -> dict[str, Any]:
    try:
        state = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        return {"timeline": [], "facts": {}, "sla": None, "summary": None, "state_error": str(exc)}
    if not isinstance(state, dict):
        return {
            "timeline": [],
            "facts": {},
            "sla": None,
            "summary": None,
            "state_error": "unexpected state",
        }
    raw_walk = state.get("walk")
    walk: dict[str, Any] = raw_walk if isinstance(raw_walk, dict) else {}
    sla = _sla_view(state.get("sla"))
    timeline = [_event(s) for s in state.get("timeline") or () if isinstance(s, dict)]
    return {
        "timeline": timeline,
        "facts": _facts(walk),
        "sla": sla,
        "summary": summary(walk, sla, now),
        "state_error": None,
    }
