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
_BREACH_FIELDS: Final = ("measure", "minute", "channel", "team", "agent", "labels", "value")


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
        else:
            facts[key] = value
    return facts


def _breach(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, list) or len(raw) != len(_BREACH_FIELDS):
        return None
    breach = dict(zip(_BREACH_FIELDS, raw, strict=True))
    breach["minute"] = _time(breach["minute"])
    return breach


def _seconds(end: Any, start: Any) -> float | None:
    if isinstance(end, int | float) and isinstance(start, int | float):
        return max(float(end) - float(start), 0.0)
    return None


def _sla(walk: dict[str, Any], breach: dict[str, Any] | None, now: datetime) -> str:
    deadline = walk.get("sla_deadline")
    if deadline is None:
        return "none"
    first_response, first_resolved = walk.get("first_response_at"), walk.get("first_resolved_at")
    if first_response is not None and first_response <= deadline:
        return "met"
    if first_resolved is not None and first_resolved <= deadline:
        return "not_needed"
    if breach is not None:
        return "breached"
    return "pending" if deadline > now.timestamp() else "breach_pending"


def summary(walk: dict[str, Any], breach: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
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
        "first_response_sla": _sla(walk, breach, now),
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
        return {"timeline": [], "facts": {}, "breach": None, "summary": None, "state_error": str(exc)}
    if not isinstance(state, dict):
        return {
            "timeline": [],
            "facts": {},
            "breach": None,
            "summary": None,
            "state_error": "unexpected state",
        }
    raw_walk = state.get("walk")
    walk: dict[str, Any] = raw_walk if isinstance(raw_walk, dict) else {}
    breach = _breach(state.get("breach"))
    timeline = [_event(s) for s in state.get("timeline") or () if isinstance(s, dict)]
    return {
        "timeline": timeline,
        "facts": _facts(walk),
        "breach": breach,
        "summary": summary(walk, breach, now),
        "state_error": None,
    }
