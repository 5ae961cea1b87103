"""SLA policies: which targets apply to a conversation, and since when.

A tenant's policies form an ordered list; the first whose conditions match a conversation
wins, and a *default* policy (no condition at all) may close the list. Each entry is one
**version** of a named policy, with the instant it takes effect: editing a policy adds a
version (the old one stays, so history is judged by the version that applied), and
withdrawing one adds a version with ``active: false``. At an instant ``at``, each name is
represented by its highest version effective by then, at that version's place in the
list. Everything here is a frozen pydantic model and round-trips through JSON, for the
Postgres storage and the CRUD API to come.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Channel
from shared.sla.calendar import ALWAYS, Calendar, Name, to_us
from shared.sla.clock import DEFAULT_PAUSING

__all__ = [
    "PAUSABLE",
    "ClockType",
    "Policy",
    "PolicyError",
    "SlaConfig",
    "Target",
    "check_policies",
    "effective_policies",
    "match",
]

# Statuses that may pause a clock: waiting on the customer. "open" would stop every clock
# for good, and "resolved" already stops them.
PAUSABLE: Final = frozenset({"pending", "snoozed"})
# A target beyond a year is a typo (seconds given as milliseconds, say).
MAX_TARGET_SECONDS: Final = 366 * 86_400.0

Text = Annotated[str, Field(min_length=1, max_length=200)]
Values = tuple[Text, ...]
_CHANNELS: Final = frozenset(Channel)


class PolicyError(ValueError):
    """Policies that contradict each other; the message lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class ClockType(enum.StrEnum):
    CALENDAR = "calendar"  # plain elapsed time, nights and weekends included
    BUSINESS = "business"  # time while the named calendar is open


class Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seconds: float
    clock: ClockType = ClockType.CALENDAR
    calendar: Name | None = None

    @field_validator("seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"target must be a positive number of seconds, got {value!r}")
        if value > MAX_TARGET_SECONDS:
            raise ValueError(f"target {value:g} s is more than a year")
        return value

    @model_validator(mode="after")
    def _calendar_named_for_business(self) -> Target:
        if self.clock is ClockType.BUSINESS and self.calendar is None:
            raise ValueError("a business-time target names its calendar")
        if self.clock is ClockType.CALENDAR and self.calendar is not None:
            raise ValueError(
                f"a calendar-time target takes no calendar; drop {self.calendar!r} or use business"
            )
        return self

    @property
    def calendar_name(self) -> str:
        return self.calendar if self.calendar is not None else ALWAYS.name


class Policy(BaseModel):
    """One version of one policy. Conditions: any listed value matches; empty means any."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: Text  # a tenant id as events carry it
    name: Name
    version: int = Field(ge=1)
    effective_from: AwareDatetime
    active: bool = True
    channels: Values = ()
    priorities: Values = ()
    teams: Values = ()
    # The conversation carries at least one of these labels.
    labels: Values = ()
    first_response: Target | None = None
    next_reply: Target | None = None
    resolution: Target | None = None
    pausing_statuses: tuple[str, ...] = tuple(sorted(DEFAULT_PAUSING))
    at_risk_share: float = Field(default=0.8, gt=0, le=1)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: Values) -> Values:
        # Events carry only these (others become "other"), so any other value could never match.
        unknown = sorted(set(value) - _CHANNELS)
        if unknown:
            raise ValueError(f"unknown channels {unknown} (one of {sorted(_CHANNELS)})")
        return value

    @field_validator("pausing_statuses")
    @classmethod
    def _pausable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - PAUSABLE)
        if unknown:
            raise ValueError(f"statuses {unknown} cannot pause a clock (only {sorted(PAUSABLE)})")
        return tuple(sorted(set(value)))

    @property
    def is_default(self) -> bool:
        return not (self.channels or self.priorities or self.teams or self.labels)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name} v{self.version}"

    def targets(self) -> dict[str, Target]:
        found = {
            "first_response": self.first_response,
            "next_reply": self.next_reply,
            "resolution": self.resolution,
        }
        return {kind: target for kind, target in found.items() if target is not None}

    def matches(self, channel: str, priority: str | None, team: str | None, labels: Collection[str]) -> bool:
        return (
            (not self.channels or channel in self.channels)
            and (not self.priorities or priority in self.priorities)
            and (not self.teams or team in self.teams)
            and (not self.labels or any(label in labels for label in self.labels))
        )


def effective_policies(policies: Iterable[Policy], tenant: str, at: datetime) -> list[Policy]:
    """The tenant's active policies at ``at``, in match order."""
    when = to_us(at)
    chosen: dict[str, tuple[int, Policy]] = {}
    for position, policy in enumerate(policies):
        if policy.tenant != tenant or to_us(policy.effective_from) > when:
            continue
        held = chosen.get(policy.name)
        if held is None or policy.version > held[1].version:
            chosen[policy.name] = (position, policy)
    return [policy for _, policy in sorted(chosen.values(), key=lambda pair: pair[0]) if policy.active]


def match(
    policies: Iterable[Policy],
    tenant: str,
    channel: str,
    priority: str | None,
    team: str | None,
    labels: Collection[str],
    at: datetime,
) -> Policy | None:
    """The policy version that applies to a conversation with these attributes at ``at``.

    Callers pass the instant the clock started (the conversation's creation), not the
    wall clock, so a replay picks the same version as the live run did.
    """
    for policy in effective_policies(policies, tenant, at):
        if policy.matches(channel, priority, team, labels):
            return policy
    return None


def check_policies(policies: Sequence[Policy], calendars: Collection[str] = ()) -> None:
    """Raise :class:`PolicyError` listing every inconsistency between the policies.

    ``calendars`` names the calendars business-time targets may use (besides ``always``).
    """
    problems: list[str] = []
    versions: dict[tuple[str, str], list[Policy]] = {}
    for policy in policies:
        same = versions.setdefault((policy.tenant, policy.name), [])
        if any(p.version == policy.version for p in same):
            problems.append(f"{policy.key}: duplicate name and version")
        same.append(policy)
        for kind, target in policy.targets().items():
            known = target.calendar is None or target.calendar in calendars or target.calendar == ALWAYS.name
            if not known:
                problems.append(f"{policy.key}: {kind} names unknown calendar {target.calendar!r}")
    for (tenant, name), same in versions.items():
        ordered = sorted(same, key=lambda p: p.version)
        for before, after in itertools.pairwise(ordered):
            if after.effective_from < before.effective_from:
                problems.append(
                    f"{tenant}/{name}: v{after.version} takes effect ({after.effective_from.isoformat()}) "
                    f"before v{before.version} ({before.effective_from.isoformat()})"
                )
    # The effective list only changes when some version takes effect: check each such instant.
    for tenant in sorted({p.tenant for p in policies}):
        for at in sorted({p.effective_from for p in policies if p.tenant == tenant}):
            effective = effective_policies(policies, tenant, at)
            for i, policy in enumerate(effective[:-1]):
                if policy.is_default:
                    problems.append(
                        f"{policy.key}: default policy (no condition) is not last from {at.isoformat()}; "
                        f"{effective[i + 1].key} after it could never match"
                    )
                    break
    if problems:
        raise PolicyError(list(dict.fromkeys(problems)))


class SlaConfig(BaseModel):
    """Calendars and policies, validated together: what Postgres will store per deployment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calendars: tuple[Calendar, ...] = ()
    policies: tuple[Policy, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> SlaConfig:
        names = [c.name for c in self.calendars]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate calendar names {duplicates}")
        if ALWAYS.name in names:
            raise ValueError(f"calendar name {ALWAYS.name!r} is reserved for the 24/7 calendar")
        check_policies(self.policies, names)
        return self

    def calendar_set(self) -> dict[str, Calendar]:
        """Calendars by name, ``always`` included, as :func:`shared.sla.deadlines.evaluate` takes them."""
        return {ALWAYS.name: ALWAYS, **{c.name: c for c in self.calendars}}

    def match(
        self,
        tenant: str,
        channel: str,
        priority: str | None,
        team: str | None,
        labels: Collection[str],
        at: datetime,
    ) -> Policy | None:
        return match(self.policies, tenant, channel, priority, team, labels, at)
