"""Request and response models of the SLA configuration endpoints.

Requests are checked for shape here (types, bounds, patterns: FastAPI's own 422 names the
field); the rules that need the domain (overlapping periods, a business target without a
calendar, the default policy last, ...) are :mod:`shared.sla`'s, applied by the service, and
come back as the same kind of 422.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.events import Channel
from shared.sla.calendar import MAX_SPECIAL_DATES, Name, Weekday
from shared.sla.policy import MAX_TARGET_SECONDS, ClockType

_TIME: Final = r"([01][0-9]|2[0-4]):[0-5][0-9](:[0-5][0-9])?"
MAX_VALUES: Final = 100
MAX_PERIODS: Final = 48


def _storable(value: str) -> str:
    # Postgres text and jsonb hold neither NUL nor unpaired surrogates; refuse them as input.
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("contains a NUL character or an unpaired surrogate")
    return value


def _utc_convertible(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_storable)]
Zone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_storable)]
Instant = Annotated[AwareDatetime, AfterValidator(_utc_convertible)]
Clock = Annotated[str, StringConstraints(pattern=f"^{_TIME}$")]
PeriodText = Annotated[str, StringConstraints(pattern=f"^{_TIME}-{_TIME}$")]


class PeriodSpec(BaseModel):
    """Open from ``start`` to ``end`` (exclusive) on the calendar's wall clock."""

    model_config = ConfigDict(extra="forbid")

    start: Clock
    end: Clock


Periods = Annotated[
    list[PeriodText | PeriodSpec],
    Field(max_length=MAX_PERIODS, description='Periods as "HH:MM-HH:MM" or {"start", "end"}; end exclusive.'),
]

_CALENDAR_EXAMPLE: Final[dict[str, Any]] = {
    "timezone": "Europe/Paris",
    "week": {
        "mon": ["09:00-12:30", "13:30-18:00"],
        "tue": ["09:00-12:30", "13:30-18:00"],
        "wed": ["09:00-12:30", "13:30-18:00"],
        "thu": ["09:00-12:30", "13:30-18:00"],
        "fri": [{"start": "09:00", "end": "17:00"}],
    },
    "holidays": ["2026-12-25"],
    "exceptions": {"2026-12-24": ["09:00-12:00"]},
}


class CalendarFields(BaseModel):
    """Business hours: weekly periods in an IANA zone, holidays (closed) and exceptions."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CALENDAR_EXAMPLE]})

    timezone: Zone = Field(default="UTC", description="IANA time zone of the periods.")
    week: dict[Weekday, Periods] = Field(default_factory=dict, description="A day not listed is closed.")
    holidays: list[date] = Field(default_factory=list, max_length=MAX_SPECIAL_DATES)
    exceptions: dict[date, Periods] = Field(
        default_factory=dict,
        max_length=MAX_SPECIAL_DATES,
        description="Dates with periods of their own (a half day); [] closes the date.",
    )


class CalendarCreate(CalendarFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "paris-office", **_CALENDAR_EXAMPLE}]})

    name: Name = Field(description="Unique in the tenant; `always` is the built-in 24/7 calendar.")


class TargetSpec(BaseModel):
    """One SLA target: seconds of calendar time, or of business time on a named calendar."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"seconds": 14400, "clock": "business", "calendar": "paris-office"},
                {"seconds": 300},
            ]
        },
    )

    seconds: float = Field(gt=0, le=MAX_TARGET_SECONDS)
    clock: ClockType = Field(
        default=ClockType.CALENDAR,
        description="calendar: elapsed time, nights included; business: while `calendar` is open.",
    )
    calendar: Name | None = Field(default=None, description="Required with business time, refused otherwise.")


_POLICY_EXAMPLE: Final[dict[str, Any]] = {
    "channels": ["email"],
    "first_response": {"seconds": 14400, "clock": "business", "calendar": "paris-office"},
    "next_reply": {"seconds": 28800, "clock": "business", "calendar": "paris-office"},
    "resolution": {"seconds": 259200},
    "pausing_statuses": ["pending", "snoozed"],
    "at_risk_share": 0.8,
}


Pausing = Literal["pending", "snoozed"]


def _default_pausing() -> list[Pausing]:
    return ["pending", "snoozed"]


class PolicyFields(BaseModel):
    """The body of a policy version. Conditions: any listed value matches; an empty list means any."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_POLICY_EXAMPLE, "effective_from": "2026-12-01T00:00:00Z"}]},
    )

    effective_from: Instant | None = Field(
        default=None,
        description="When this version takes effect (default: now). Back-date to correct history "
        "(applied to conversations created since, at the next replay); not before the previous version.",
    )
    before: Name | None = Field(
        default=None,
        description="Place the policy right before this one. Default: a new policy goes right before the "
        "default policy (the one with no condition), so that stays last; a new version keeps its place.",
    )
    channels: list[Channel] = Field(default_factory=list, max_length=MAX_VALUES)
    priorities: list[Text] = Field(default_factory=list, max_length=MAX_VALUES)
    teams: list[Text] = Field(default_factory=list, max_length=MAX_VALUES)
    labels: list[Text] = Field(
        default_factory=list, max_length=MAX_VALUES, description="The conversation carries at least one."
    )
    first_response: TargetSpec | None = None
    next_reply: TargetSpec | None = None
    resolution: TargetSpec | None = None
    pausing_statuses: list[Pausing] = Field(
        default_factory=_default_pausing,
        max_length=2,
        description="Statuses that stop the clocks while the conversation waits on the customer.",
    )
    at_risk_share: float = Field(default=0.8, gt=0, le=1, description="At risk after this share of a target.")

    def rules(self) -> dict[str, Any]:
        """What the store takes as the policy's fields."""
        return self.model_dump(mode="json", exclude={"name", "effective_from", "before"})


class PolicyCreate(PolicyFields):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "email", **_POLICY_EXAMPLE}, {"name": "default"}]}
    )

    name: Name


_VERSION_EXAMPLE: Final[dict[str, Any]] = {
    "tenant": "acme",
    "name": "email",
    "version": 2,
    "effective_from": "2026-12-01T00:00:00Z",
    "active": True,
    "position": -1023.0,
    "priorities": [],
    "teams": [],
    "labels": [],
    **_POLICY_EXAMPLE,
    "created_at": "2026-11-20T10:31:12Z",
}


class PolicyVersion(BaseModel):
    """One stored version of a policy."""

    model_config = ConfigDict(json_schema_extra={"examples": [_VERSION_EXAMPLE]})

    tenant: str
    name: str
    version: int
    effective_from: datetime
    active: bool = Field(description="False for a withdrawal (DELETE): the policy stops applying.")
    position: float = Field(description="The list order (first match wins); ties broken by name.")
    channels: list[str]
    priorities: list[str]
    teams: list[str]
    labels: list[str]
    first_response: TargetSpec | None
    next_reply: TargetSpec | None
    resolution: TargetSpec | None
    pausing_statuses: list[str]
    at_risk_share: float
    created_at: datetime


class PolicyList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "at": "2026-12-02T00:00:00Z",
                    "policies": [_VERSION_EXAMPLE],
                }
            ]
        }
    )

    tenant: str
    at: datetime | None = Field(
        description="With ?at=: the active versions in force then, in match order. Without: null, and "
        "every version ever stored, in list order (position, name, version)."
    )
    policies: list[PolicyVersion]


class PolicyHistory(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "name": "email",
                    "latest": _VERSION_EXAMPLE,
                    "versions": [{**_VERSION_EXAMPLE, "version": 1}, _VERSION_EXAMPLE],
                }
            ]
        }
    )

    tenant: str
    name: str
    latest: PolicyVersion = Field(description="The highest version (in force from its effective_from).")
    versions: list[PolicyVersion] = Field(description="Every version, oldest first.")


_CALENDAR_OUT_EXAMPLE: Final[dict[str, Any]] = {
    "tenant": "acme",
    "name": "paris-office",
    "timezone": "Europe/Paris",
    "week": {"mon": [{"start": "09:00", "end": "12:30"}, {"start": "13:30", "end": "18:00"}]},
    "holidays": ["2026-12-25"],
    "exceptions": {"2026-12-24": [{"start": "09:00", "end": "12:00"}]},
    "updated_at": "2026-11-20T10:30:00Z",
}


class CalendarOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CALENDAR_OUT_EXAMPLE]})

    tenant: str
    name: str
    timezone: str
    week: dict[Weekday, list[PeriodSpec]]
    holidays: list[date]
    exceptions: dict[date, list[PeriodSpec]]
    updated_at: datetime


class CalendarList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tenant": "acme", "calendars": [_CALENDAR_OUT_EXAMPLE]}]}
    )

    tenant: str
    calendars: list[CalendarOut]
