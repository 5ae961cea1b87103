"""The simulated support team: agents, teams/queues, inboxes, and the vendors' ids for them.

One roster serves every vendor, so a dashboard filtered by team shows chats and calls of
the same people. Vendor ids of long-lived things (workers, queues, workspace) are stable
hashes of their names: two runs talk about the same team, as a real tenant would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final


def sid(prefix: str, *parts: object) -> str:
    """A Twilio-style SID: two letters and 32 hex digits, stable for the same parts."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16)
    return prefix + digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    # Chatwoot user id (account-scoped).
    user_id: int
    # Asterisk queue member interface.
    interface: str

    @property
    def worker_sid(self) -> str:
        return sid("WK", "worker", self.name)


@dataclass(frozen=True, slots=True)
class Team:
    # Chatwoot team id and name; the name is also the Twilio TaskQueue's.
    id: int
    name: str
    # Asterisk queue name (lower case, as in extensions.conf).
    queue: str
    agents: tuple[Agent, ...]
    # Share of the traffic this team receives.
    weight: float

    @property
    def queue_sid(self) -> str:
        return sid("WQ", "queue", self.name)


@dataclass(frozen=True, slots=True)
class Inbox:
    id: int
    name: str
    # Chatwoot channel class name.
    channel: str


def _agents(first_id: int, names: tuple[str, ...]) -> tuple[Agent, ...]:
    return tuple(
        Agent(name=name, user_id=first_id + i, interface=f"PJSIP/{2000 + first_id + i}")
        for i, name in enumerate(names)
    )


TEAMS: Final = (
    Team(1, "Support", "support", _agents(1, ("alice", "bruno", "chloe", "dmitri", "emma", "farid")), 0.6),
    Team(2, "Billing", "billing", _agents(11, ("giulia", "hugo", "ines")), 0.25),
    Team(3, "Sales", "sales", _agents(21, ("jonas", "kenji", "lea")), 0.15),
)
AGENTS: Final = tuple(agent for team in TEAMS for agent in team.agents)
TEAM_WEIGHTS: Final = tuple(team.weight for team in TEAMS)

INBOXES: Final = {
    "chat": Inbox(1, "Website", "Channel::WebWidget"),
    "email": Inbox(2, "Support email", "Channel::Email"),
    "whatsapp": Inbox(3, "WhatsApp", "Channel::Whatsapp"),
}

BOT_ID: Final = 7
BOT_NAME: Final = "Helper bot"
AUTOMATION_RULE_IDS: Final = (3, 4)
CAMPAIGN_IDS: Final = (12, 15)
LABELS: Final = ("billing", "refund", "delivery", "bug", "vip", "feedback", "account", "urgent")
TRANSFER_EXTENSIONS: Final = ("2900", "2901", "3100")

FIRST_NAMES: Final = (
    "Ana", "Ben", "Carla", "David", "Elif", "Femi", "Greta", "Hiro", "Ivan", "Jana", "Karim", "Lucia",
    "Marta", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Victor", "Wen", "Yara",
)  # fmt: skip

CUSTOMER_TEXTS: Final = (
    "Hi, my order has not arrived yet",
    "I was charged twice this month",
    "How do I change my delivery address?",
    "The app crashes when I open my invoices",
    "Can I get a refund for my last order?",
    "I can't log in to my account",
    "Do you ship to Switzerland?",
    "My discount code does not work",
)
FOLLOW_UPS: Final = (
    "Order number is in my previous email",
    "Thanks, and how long will it take?",
    "It still doesn't work",
    "OK, I just tried again",
    "Could you check once more please?",
)
AGENT_TEXTS: Final = (
    "Hello! Let me check that for you.",
    "Thanks for waiting, I found your order.",
    "I've just issued the refund, it takes 3-5 days.",
    "Could you send me a screenshot?",
    "That should be fixed now, can you try again?",
)
BOT_TEXTS: Final = (
    "Hi! I'm the assistant. What can I help you with?",
    "Here is an article that may help: https://help.example.com/orders",
    "Did that answer your question?",
)
NOTES: Final = ("Customer is VIP, be nice", "Checked the payment provider: double charge confirmed")
FEEDBACK: Final = ("Quick and helpful, thanks!", "Took a while but solved", "Not solved at all", "Great")
