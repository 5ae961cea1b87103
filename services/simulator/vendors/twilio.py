"""Twilio TaskRouter workspace event callbacks (form-encoded) and ``X-Twilio-Signature``.

Parameters follow TaskRouter's "Event callbacks" reference: the common fields
(``EventType``, ``AccountSid``, ``WorkspaceSid``, ``Sid``, ``Timestamp`` in epoch seconds,
``ResourceType``/``ResourceSid``), the task fields (``TaskAttributes`` is a JSON string
inside the form) and the worker fields. Times are offsets from the story start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from services.simulator.roster import Agent, Team

WORKSPACE_NAME = "SupportPulse Demo"


@dataclass(frozen=True, slots=True)
class Measures:
    """What Flex Insights writes into the task attributes once the task is done."""

    talk: int
    hold: int
    wrap: int


@dataclass(frozen=True, slots=True)
class TaskEvent:
    event_type: str
    at: float
    sid: str  # the event's own EV... sid
    task_sid: str
    call_sid: str
    caller: str
    team: Team
    # TaskAge: seconds since the task was created (integer, as Twilio sends it).
    age: int
    assignment_status: str
    worker: Agent | None = None
    reservation_sid: str | None = None
    canceled_reason: str | None = None
    measures: Measures | None = None

    def summary(self) -> dict[str, object]:
        return {"event": self.event_type, "task": self.task_sid, "call": self.call_sid}


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    at: float
    sid: str
    worker: Agent
    activity: str
    previous: str
    seconds_in_previous: int

    def summary(self) -> dict[str, object]:
        return {"event": "worker.activity.update", "worker": self.worker.name, "activity": self.activity}


def _attributes(ev: TaskEvent) -> str:
    attributes: dict[str, object] = {
        "call_sid": ev.call_sid,
        "from": ev.caller,
        "to": "+15550001111",
        "direction": "inbound",
        "type": "inbound",
    }
    if ev.measures is not None:
        attributes["conversations"] = {
            "talk_time": ev.measures.talk,
            "hold_time": ev.measures.hold,
            "wrap_up_time": ev.measures.wrap,
        }
    return json.dumps(attributes, separators=(",", ":"))


def params(
    ev: TaskEvent | WorkerEvent, origin: float, account_sid: str, workspace_sid: str
) -> list[tuple[str, str]]:
    """The form parameters of ``ev`` in a story that started at ``origin`` (epoch seconds)."""
    common = [
        ("AccountSid", account_sid),
        ("WorkspaceSid", workspace_sid),
        ("WorkspaceName", WORKSPACE_NAME),
        ("Sid", ev.sid),
        ("Timestamp", str(int(origin + ev.at))),
    ]
    if isinstance(ev, WorkerEvent):
        return [
            *common,
            ("EventType", "worker.activity.update"),
            ("EventDescription", f"Worker {ev.worker.name} updated to {ev.activity} Activity"),
            ("ResourceType", "Worker"),
            ("ResourceSid", ev.worker.worker_sid),
            ("WorkerSid", ev.worker.worker_sid),
            ("WorkerName", ev.worker.name),
            ("WorkerAttributes", json.dumps({"contact_uri": f"client:{ev.worker.name}"})),
            ("WorkerActivityName", ev.activity),
            ("WorkerPreviousActivityName", ev.previous),
            ("WorkerTimeInPreviousActivity", str(ev.seconds_in_previous)),
        ]
    out = [
        *common,
        ("EventType", ev.event_type),
        ("EventDescription", f"{ev.event_type} for task {ev.task_sid}"),
        ("ResourceType", "Reservation" if ev.event_type.startswith("reservation.") else "Task"),
        ("ResourceSid", ev.reservation_sid or ev.task_sid),
        ("TaskSid", ev.task_sid),
        ("TaskAttributes", _attributes(ev)),
        ("TaskAge", str(ev.age)),
        ("TaskPriority", "0"),
        ("TaskAssignmentStatus", ev.assignment_status),
        ("TaskChannelUniqueName", "voice"),
        ("TaskQueueSid", ev.team.queue_sid),
        ("TaskQueueName", ev.team.name),
    ]
    if ev.worker is not None:
        out += [("WorkerSid", ev.worker.worker_sid), ("WorkerName", ev.worker.name)]
    if ev.reservation_sid is not None:
        out.append(("ReservationSid", ev.reservation_sid))
    if ev.canceled_reason is not None:
        out.append(("TaskCanceledReason", ev.canceled_reason))
    return out


def signature(auth_token: bytes, url: str, form: list[tuple[str, str]]) -> str:
    """base64 HMAC-SHA1 of the URL then each name+value, sorted by name (then value)."""
    data = url + "".join(name + value for name, value in sorted(form))
    return base64.b64encode(hmac.new(auth_token, data.encode(), hashlib.sha1).digest()).decode()
