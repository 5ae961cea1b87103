"""Chatwoot conversation stories: web chat, email and WhatsApp.

A story: created (pending when a bot takes it) -> the customer writes -> maybe a greeting,
an automation acknowledgement or a campaign message (none is a human reply) -> the bot
talks, then solves it or hands off -> assignment (and labels, a private note) -> the first
human reply (5 s - 3 min, or after 5 min for the slow share) -> a few exchanges, maybe a
reassignment -> resolved -> CSAT survey, sometimes answered, sometimes twice (rating, then
comment) -> sometimes reopened by the customer, answered and resolved again.

Durations are compressed (minutes, not hours) so a demo shows every KPI within minutes.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from services.simulator.roster import (
    AGENT_TEXTS,
    AUTOMATION_RULE_IDS,
    BOT_TEXTS,
    CAMPAIGN_IDS,
    CUSTOMER_TEXTS,
    FEEDBACK,
    FIRST_NAMES,
    FOLLOW_UPS,
    INBOXES,
    LABELS,
    NOTES,
    TEAM_WEIGHTS,
    TEAMS,
    Agent,
    Team,
)
from services.simulator.story import CHATWOOT, Mix, Script, Story
from services.simulator.vendors.chatwoot import ChatwootEvent, Conv, Message, Sender
from shared.events import EventType

CREATED = EventType.CONVERSATION_CREATED
STATUS = EventType.CONVERSATION_STATUS_CHANGED
ASSIGNED = EventType.CONVERSATION_ASSIGNED
LABELLED = EventType.CONVERSATION_LABELS_CHANGED
MESSAGE = EventType.MESSAGE_CREATED
SURVEY = EventType.SURVEY_SUBMITTED

GREETING_SHARE = 0.30
AUTOMATION_SHARE = 0.15
CAMPAIGN_SHARE = 0.08
LABEL_SHARE = 0.40
NOTE_SHARE = 0.15
# CSAT ratings 5..1: most customers are happy, those kept waiting much less so.
RATINGS = (5, 4, 3, 2, 1)
HAPPY = (0.45, 0.25, 0.12, 0.08, 0.10)
UNHAPPY = (0.10, 0.15, 0.20, 0.25, 0.30)


def first_response(rng: random.Random, slow: bool) -> float:
    """Seconds to the first human reply: log-normal, median ~35 s, 5 s - 3 min; slow: 310-480 s."""
    if slow:
        return rng.uniform(310.0, 480.0)
    return min(max(rng.lognormvariate(math.log(35.0), 0.8), 5.0), 180.0)


class _Chat:
    """Writes one conversation's deliveries while tracking what Chatwoot would show."""

    def __init__(self, rng: random.Random, number: int, run_id: int, channel: str) -> None:
        self.rng = rng
        self.script = Script()
        # Display ids are per account and must not repeat across runs (the connector keys
        # conversation.created on them): the run id (start time) leads.
        self.display_id = run_id * 1_000_000 + number
        self.messages = 0
        contact = Sender("contact", self.display_id, rng.choice(FIRST_NAMES))
        priority = rng.choices((None, "high", "urgent"), (0.85, 0.10, 0.05))[0]
        self.conv = Conv(self.display_id, INBOXES[channel], contact, created_at=0.0, priority=priority)
        self.channel = channel

    # conversation events --------------------------------------------------------------

    def _conversation(self, name: str, at: float, changes: tuple[tuple[str, object, object], ...],
                      *expect: str) -> None:  # fmt: skip
        self.conv = replace(self.conv, last_activity_at=max(self.conv.last_activity_at, at))
        self.script.add(at, CHATWOOT, ChatwootEvent(name, self.conv, at, changes=changes), *expect)

    def created(self, status: str) -> None:
        self.conv = replace(self.conv, status=status)
        expect = (CREATED, STATUS) if status == "pending" else (CREATED,)
        self._conversation("conversation_created", 0.0, (), *expect)

    def status(self, at: float, new: str) -> None:
        old = self.conv.status
        self.conv = replace(self.conv, status=new)
        self._conversation("conversation_status_changed", at, (("status", old, new),), STATUS)

    def assign(self, at: float, agent: Agent, team: Team) -> None:
        old_agent, old_team = self.conv.assignee, self.conv.team
        self.conv = replace(self.conv, assignee=agent, team=team)
        changes: list[tuple[str, object, object]] = [
            ("assignee_id", None if old_agent is None else old_agent.user_id, agent.user_id)
        ]
        if old_team != team:
            changes.append(("team_id", None if old_team is None else old_team.id, team.id))
        self._conversation("conversation_updated", at, tuple(changes), ASSIGNED)

    def label(self, at: float, labels: tuple[str, ...]) -> None:
        old = self.conv.labels
        self.conv = replace(self.conv, labels=labels)
        self._conversation("conversation_updated", at, (("label_list", list(old), list(labels)),), LABELLED)

    # messages ---------------------------------------------------------------------------

    def say(
        self, at: float, message_type: str, sender: Sender | None, content: str, **fields: Any
    ) -> Message:
        self.messages += 1
        message = Message(self.display_id * 100 + self.messages, message_type, content, sender, at, **fields)
        self.conv = replace(self.conv, last_activity_at=at)
        self.script.add(at, CHATWOOT, ChatwootEvent("message_created", self.conv, at, message), MESSAGE)
        return message

    def customer(self, at: float, text: str) -> None:
        if self.conv.waiting_since is None:
            self.conv = replace(self.conv, waiting_since=at)
        content_type = "incoming_email" if self.channel == "email" else "text"
        self.say(at, "incoming", self.conv.contact, text, content_type=content_type)

    def agent(self, at: float, agent: Agent) -> None:
        self.conv = replace(self.conv, waiting_since=None)
        self.say(at, "outgoing", Sender.user(agent), self.rng.choice(AGENT_TEXTS))

    def survey_answer(self, at: float, survey: Message, rating: int, comment: str) -> None:
        answered = replace(
            survey,
            content_attributes={
                "submitted_values": {"csat_survey_response": {"rating": rating, "feedback_message": comment}}
            },
        )
        ev = ChatwootEvent("message_updated", self.conv, at, answered)
        self.script.add(at, CHATWOOT, ev, SURVEY)


def chat_story(rng: random.Random, number: int, run_id: int, channel: str, mix: Mix) -> Story:
    """One conversation on ``channel`` (chat, email or whatsapp)."""
    c = _Chat(rng, number, run_id, channel)
    bot = channel != "email" and rng.random() < mix.bot_share
    plan: dict[str, Any] = {"channel": channel, "bot": bot, "display_id": c.display_id}
    c.created("pending" if bot else "open")
    t = rng.uniform(0.2, 1.0)
    if channel == "chat" and not bot and rng.random() < CAMPAIGN_SHARE:
        # An ongoing campaign greets the visitor first: sent as an agent, but not a reply.
        agent = rng.choice(TEAMS[-1].agents)
        c.say(t, "outgoing", Sender.user(agent), "Need help choosing a plan?",
              additional_attributes={"campaign_id": rng.choice(CAMPAIGN_IDS)})  # fmt: skip
        t += rng.uniform(3.0, 20.0)
        plan["campaign"] = True
    c.customer(t, rng.choice(CUSTOMER_TEXTS))
    if channel == "chat" and not bot and rng.random() < GREETING_SHARE:
        c.say(t + rng.uniform(0.3, 1.5), "template", None, "We typically reply in a few minutes.")
    elif rng.random() < AUTOMATION_SHARE:
        c.say(t + rng.uniform(0.3, 2.0), "outgoing", None, "Thanks, we received your message.",
              content_attributes={"automation_rule_id": rng.choice(AUTOMATION_RULE_IDS)})  # fmt: skip
    clock = 0.0  # when the first-response clock starts: creation, or the bot's handoff
    if bot:
        handoff = _bot(c, t, mix, plan)
        if handoff is None:
            return c.script.story(number, channel, plan)
        t = clock = handoff
    _human(c, t, clock, mix, plan)
    return c.script.story(number, channel, plan)


def _bot(c: _Chat, t: float, mix: Mix, plan: dict[str, Any]) -> float | None:
    """The bot's turns; the handoff time, or None when the bot solved it."""
    rng = c.rng
    rounds = rng.randint(1, 3)
    for i in range(rounds):
        t += rng.uniform(1.0, 4.0)
        c.say(t, "outgoing", Sender.bot(), BOT_TEXTS[i % len(BOT_TEXTS)])
        if i < rounds - 1:
            t += rng.uniform(5.0, 25.0)
            c.customer(t, rng.choice(FOLLOW_UPS))
    plan["bot_turns"] = rounds
    if rng.random() < mix.bot_resolves:
        c.status(t + rng.uniform(5.0, 20.0), "resolved")
        plan["outcome"] = "bot_resolved"
        return None
    t += rng.uniform(5.0, 20.0)
    c.customer(t, "I'd like to talk to a person")
    t += rng.uniform(0.5, 3.0)
    c.status(t, "open")
    plan["handoff_at"] = round(t, 3)
    return t


def _human(c: _Chat, t: float, clock: float, mix: Mix, plan: dict[str, Any]) -> None:
    rng = c.rng
    team = rng.choices(TEAMS, TEAM_WEIGHTS)[0]
    agent = rng.choice(team.agents)
    no_reply = rng.random() < mix.no_reply_share
    slow = not no_reply and rng.random() < mix.slow_share
    frt = first_response(rng, slow)
    reply_at = max(clock + frt, t + 2.0)
    assign_at = t + min(rng.uniform(1.0, 12.0), (reply_at - t) * 0.5)
    c.assign(assign_at, agent, team)
    plan.update(team=team.name, agent=agent.name, slow=slow, no_reply=no_reply)
    if rng.random() < LABEL_SHARE:
        c.label(assign_at + rng.uniform(0.2, 1.0), tuple(sorted(rng.sample(LABELS, rng.randint(1, 2)))))
    # The customer left; an agent closes it unanswered (before the chat SLA deadline).
    end = t + rng.uniform(60.0, 240.0) if no_reply else reply_at
    if rng.random() < NOTE_SHARE:
        at = assign_at + (end - assign_at) * rng.uniform(0.3, 0.9)
        c.say(at, "outgoing", Sender.user(agent), rng.choice(NOTES), private=True)
    if no_reply:
        c.status(end, "resolved")
        plan["outcome"] = "no_reply"
        return
    c.agent(reply_at, agent)
    plan["first_response"] = round(reply_at - clock, 3)
    t = reply_at
    rounds = rng.choices((0, 1, 2, 3), (0.35, 0.35, 0.20, 0.10))[0]
    transfer_at = rng.randrange(rounds) if rounds and rng.random() < mix.transfer_share else None
    for i in range(rounds):
        t += rng.uniform(10.0, 60.0)
        c.customer(t, rng.choice(FOLLOW_UPS))
        if i == transfer_at:
            t += rng.uniform(3.0, 15.0)
            team = rng.choice(TEAMS) if rng.random() < 0.5 else team
            agent = rng.choice([a for a in team.agents if a != agent])
            c.assign(t, agent, team)
            plan["transferred_to"] = agent.name
        t += rng.uniform(5.0, 90.0)
        c.agent(t, agent)
    plan["exchanges"] = rounds
    t += rng.uniform(5.0, 60.0)
    c.status(t, "resolved")
    plan["outcome"] = "resolved"
    t = _survey(c, t, mix, slow, plan)
    if rng.random() < mix.reopen_share:
        t += rng.uniform(20.0, 120.0)
        # Chatwoot stores the message, then reopens the conversation it landed in.
        c.customer(t, "Sorry, one more question")
        c.status(t + 0.2, "open")
        t += rng.uniform(10.0, 90.0)
        c.agent(t, agent)
        c.status(t + rng.uniform(10.0, 40.0), "resolved")
        plan["reopened"] = True


def _survey(c: _Chat, resolved_at: float, mix: Mix, slow: bool, plan: dict[str, Any]) -> float:
    """The CSAT survey sent on resolve and its answers; returns the time of the last one."""
    rng = c.rng
    if rng.random() >= mix.survey_share:
        return resolved_at
    t = resolved_at + rng.uniform(0.3, 1.5)
    survey = c.say(t, "template", None, "Please rate the conversation", content_type="input_csat")
    plan["survey"] = True
    if rng.random() >= mix.answer_share:
        return t
    rating = rng.choices(RATINGS, UNHAPPY if slow else HAPPY)[0]
    t += rng.uniform(10.0, 90.0)
    c.survey_answer(t, survey, rating, "")
    plan["ratings"] = [rating]
    if rng.random() < mix.comment_share:
        # The comment re-submits the form; now and then with a changed mind.
        if rng.random() < 0.1:
            rating = max(1, min(5, rating + rng.choice((-1, 1))))
        t += rng.uniform(10.0, 60.0)
        c.survey_answer(t, survey, rating, rng.choice(FEEDBACK))
        plan["ratings"].append(rating)
    return t
