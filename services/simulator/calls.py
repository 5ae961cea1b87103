"""Phone call stories (Twilio TaskRouter, Asterisk queue_log) and agent presence stories.

A call enters a queue, waits 1-60 s, then is answered (talk 20-300 s, maybe hold, wrap-up,
sometimes a transfer), abandoned (a share within 5 s: short abandons) or times out at 60 s.
Waits and durations are whole seconds, as both vendors report them, so the plan and the
payloads agree exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Final

from services.simulator.roster import AGENTS, TEAM_WEIGHTS, TEAMS, TRANSFER_EXTENSIONS, Agent, Team, sid
from services.simulator.story import ASTERISK, TWILIO, Mix, Script, Story
from services.simulator.vendors.asterisk import QueueLogLine
from services.simulator.vendors.twilio import Measures, TaskEvent, WorkerEvent
from shared.events import EventType

QUEUED = EventType.CALL_QUEUED
ANSWERED = EventType.CALL_ANSWERED
ABANDONED = EventType.CALL_ABANDONED
TIMED_OUT = EventType.CALL_TIMED_OUT
TRANSFERRED = EventType.CALL_TRANSFERRED
ENDED = EventType.CALL_ENDED
AGENT_STATUS = EventType.AGENT_STATUS_CHANGED

QUEUE_TIMEOUT: Final = 60
RING_NO_ANSWER_SHARE: Final = 0.2
# Not a timeout in the connector's reading: a caller hanging up cancels the task.
HANGUP_REASON: Final = "hangup"
TTL_REASON: Final = "Task TTL Exceeded"


@dataclass(frozen=True, slots=True)
class CallPlan:
    outcome: str  # answered | abandoned | timed_out
    wait: int
    team: Team
    agent: Agent
    caller: str
    talk: int = 0
    hold: int = 0
    wrap: int = 0
    transfer: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "wait": self.wait, "team": self.team.name, "agent": self.agent.name,
            "talk": self.talk, "hold": self.hold, "wrap": self.wrap, "transfer": self.transfer,
        }  # fmt: skip


def call_plan(rng: random.Random, mix: Mix, caller: str) -> CallPlan:
    team = rng.choices(TEAMS, TEAM_WEIGHTS)[0]
    agent = rng.choice(team.agents)
    roll = rng.random()
    if roll < mix.timeout_share:
        return CallPlan("timed_out", QUEUE_TIMEOUT, team, agent, caller)
    if roll < mix.timeout_share + mix.abandon_share:
        short = rng.random() < mix.short_abandon_share
        wait = rng.randint(1, 4) if short else rng.randint(5, QUEUE_TIMEOUT - 1)
        return CallPlan("abandoned", wait, team, agent, caller)
    # Answered: exponential wait, ~75 % within the 20 s service-level target.
    wait = min(1 + int(rng.expovariate(1 / 14)), QUEUE_TIMEOUT - 1)
    talk = int(min(max(rng.lognormvariate(math.log(110.0), 0.6), 20.0), 300.0))
    hold = 0 if rng.random() < 0.7 else rng.randint(5, 60)
    return CallPlan(
        "answered", wait, team, agent, caller, talk=talk, hold=hold, wrap=rng.randint(5, 45),
        transfer=rng.random() < mix.transfer_share,
    )  # fmt: skip


def twilio_call(rng: random.Random, number: int, run_id: int, mix: Mix) -> Story:
    plan = call_plan(rng, mix, f"+1555{rng.randrange(10**7):07d}")
    script = Script()
    call_sid = sid("CA", run_id, number)
    events = 0

    def task(event_type: str, at: float, task_sid: str, team: Team, age: int, status: str,
             *expect: str, **fields: Any) -> None:  # fmt: skip
        nonlocal events
        events += 1
        ev = TaskEvent(event_type, at, sid("EV", run_id, number, events), task_sid, call_sid, plan.caller,
                       team, age, status, **fields)  # fmt: skip
        script.add(at, TWILIO, ev, *expect)

    def leg(task_sid: str, start: float, team: Team, agent: Agent, wait: int, talk: int) -> float:
        """A task offered to ``team`` and answered by ``agent``; returns when it completes."""
        task("task.created", start, task_sid, team, 0, "pending")
        task("task-queue.entered", start + 0.05, task_sid, team, 0, "pending", QUEUED)
        reservation = sid("WR", task_sid, agent.name)
        ring = min(rng.uniform(2.0, 8.0), wait * 0.5)
        task("reservation.created", start + wait - ring, task_sid, team, int(wait - ring), "reserved",
             worker=agent, reservation_sid=reservation)  # fmt: skip
        task("reservation.accepted", start + wait, task_sid, team, wait, "assigned", ANSWERED,
             worker=agent, reservation_sid=reservation)  # fmt: skip
        done = start + wait + talk + plan.hold
        task("task.wrapup", done, task_sid, team, int(done - start), "wrapping", worker=agent)
        measures = Measures(talk=talk, hold=plan.hold, wrap=plan.wrap)
        task("task.completed", done + plan.wrap, task_sid, team, int(done + plan.wrap - start), "completed",
             ENDED, worker=agent, measures=measures)  # fmt: skip
        return done + plan.wrap

    first = sid("WT", run_id, number, 0)
    if plan.outcome == "answered" and not plan.transfer:
        leg(first, 0.0, plan.team, plan.agent, plan.wait, plan.talk)
    elif plan.outcome == "answered":
        # A transfer is a new task for the same call; the first task wraps up and completes.
        talk1 = max(10, plan.talk // 3)
        leg(first, 0.0, plan.team, plan.agent, plan.wait, talk1)
        target = rng.choice([t for t in TEAMS if t != plan.team])
        second = sid("WT", run_id, number, 1)
        leg(second, plan.wait + talk1 + plan.hold, target, rng.choice(target.agents), rng.randint(3, 15),
            plan.talk - talk1)  # fmt: skip
    else:
        task("task.created", 0.0, first, plan.team, 0, "pending")
        task("task-queue.entered", 0.05, first, plan.team, 0, "pending", QUEUED)
        timed_out = plan.outcome == "timed_out"
        task("task.canceled", plan.wait, first, plan.team, plan.wait, "canceled",
             TIMED_OUT if timed_out else ABANDONED,
             canceled_reason=TTL_REASON if timed_out else HANGUP_REASON)  # fmt: skip
    return script.story(number, "twilio", {**plan.as_dict(), "call_sid": call_sid})


def asterisk_call(rng: random.Random, number: int, run_id: int, mix: Mix) -> Story:
    plan = call_plan(rng, mix, f"+336{rng.randrange(10**8):08d}")
    script = Script()
    # Asterisk uniqueids are "<epoch>.<sequence>": the run's start time makes them unique.
    callid = f"{run_id}.{number}"
    queue = plan.team.queue
    position = str(rng.randint(1, 4))

    def log(at: float, agent: str, event: str, data: tuple[str, ...], *expect: str) -> None:
        script.add(at, ASTERISK, QueueLogLine(at, callid, queue, agent, event, data), *expect)

    log(0.0, "NONE", "ENTERQUEUE", ("", plan.caller, position), QUEUED)
    wait = plan.wait
    if plan.outcome == "abandoned":
        log(wait, "NONE", "ABANDON", ("1", position, str(wait)), ABANDONED)
    elif plan.outcome == "timed_out":
        log(wait, "NONE", "EXITWITHTIMEOUT", ("1", position, str(wait)), TIMED_OUT)
    else:
        ring = rng.randint(1, min(wait, 6))
        if wait >= 8 and rng.random() < RING_NO_ANSWER_SHARE:
            # Another member rang out first: RINGNOANSWER's ring time is in milliseconds.
            other = rng.choice([a for a in plan.team.agents if a != plan.agent])
            log(wait / 2, other.interface, "RINGNOANSWER", (str(int(wait / 2 * 1000)),))
        bridged = f"{run_id}.{number}1"
        log(wait, plan.agent.interface, "CONNECT", (str(wait), bridged, str(ring)), ANSWERED)
        end = wait + plan.talk
        if plan.transfer:
            log(end, plan.agent.interface, "TRANSFER",
                (rng.choice(TRANSFER_EXTENSIONS), "from-internal", str(wait), str(plan.talk), position),
                TRANSFERRED)  # fmt: skip
        else:
            event = "COMPLETEAGENT" if rng.random() < 0.4 else "COMPLETECALLER"
            log(end, plan.agent.interface, event, (str(wait), str(plan.talk), position), ENDED)
    return script.story(number, "asterisk", {**plan.as_dict(), "callid": callid})


def agent_break(
    rng: random.Random, number: int, run_id: int, connectors: frozenset[str], seed_offset: int = 0
) -> Story | None:
    """An agent takes a 30 s - 3 min break: a Twilio activity change or an Asterisk pause."""
    vendors = sorted(connectors & {TWILIO, ASTERISK})
    if not vendors:
        return None
    vendor = rng.choice(vendors)
    # Agents take turns (from a seeded start), so one agent's breaks never overlap.
    agent = AGENTS[(number + seed_offset) % len(AGENTS)]
    team = next(t for t in TEAMS if agent in t.agents)
    back = round(rng.uniform(30.0, 180.0), 3)
    script = Script()
    if vendor == TWILIO:
        script.add(0.0, TWILIO, WorkerEvent(0.0, sid("EV", run_id, "break", number, 0), agent, "Break",
                                            "Available", rng.randint(60, 3600)), AGENT_STATUS)  # fmt: skip
        script.add(back, TWILIO, WorkerEvent(back, sid("EV", run_id, "break", number, 1), agent, "Available",
                                             "Break", int(back)), AGENT_STATUS)  # fmt: skip
    else:
        script.add(0.0, ASTERISK, QueueLogLine(0.0, "NONE", team.queue, agent.interface, "PAUSE", ("break",)),
                   AGENT_STATUS)  # fmt: skip
        script.add(back, ASTERISK, QueueLogLine(back, "NONE", team.queue, agent.interface, "UNPAUSE", ("",)),
                   AGENT_STATUS)  # fmt: skip
    return script.story(number, "break", {"vendor": vendor, "agent": agent.name, "seconds": back})


def opening(run_id: int, connectors: frozenset[str]) -> Story:
    """The shift starts: every Twilio worker becomes Available, every Asterisk member joins its queue."""
    script = Script()
    for i, agent in enumerate(AGENTS):
        at = i * 0.05
        if TWILIO in connectors:
            ev = WorkerEvent(at, sid("EV", run_id, "opening", i), agent, "Available", "Offline", 0)
            script.add(at, TWILIO, ev, AGENT_STATUS)
        if ASTERISK in connectors:
            team = next(t for t in TEAMS if agent in t.agents)
            script.add(at, ASTERISK, QueueLogLine(at, "NONE", team.queue, agent.interface, "ADDMEMBER"),
                       AGENT_STATUS)  # fmt: skip
    return script.story(-1, "opening", {"agents": len(AGENTS)})
