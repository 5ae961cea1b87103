"""Postgres storage of SLA calendars and versioned policies (tables of migration 0004).

:func:`load_sla_configs` gives the aggregator one validated :class:`SlaConfig` per tenant;
:func:`load_tenant` keeps positions and timestamps too (for the API). Every write runs in the
caller's READ COMMITTED transaction (``engine.begin()``), takes the tenant's advisory lock (one
tenant's writes run one after the other), validates the whole resulting tenant config with
:class:`SlaConfig` (:class:`InvalidSla` lists every problem, nothing is written), then issues
``pg_notify(NOTIFY_CHANNEL, tenant)``, which Postgres delivers on commit only.

An edit of a policy adds the successor of the version current when the call began, read before
waiting for the lock: a version committed meanwhile makes it a :class:`VersionConflict` (the
edit was made without seeing that change), and the primary key backs this up against writers
that bypass the lock. Positions: a new policy goes right before the current default policy (so
the default stays last), or at the end when there is none; ``before`` places it right before
another; a next version keeps its place. Rows are never renumbered. docs/sla.md, "Storage",
says more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import Executable, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import sla_calendars, sla_policies
from shared.sla.calendar import Calendar
from shared.sla.policy import Policy, PolicyError, SlaConfig, effective_policies

__all__ = [
    "LOCK_CLASS",
    "NOTIFY_CHANNEL",
    "CalendarInUse",
    "Conflict",
    "FieldProblem",
    "InvalidSla",
    "NotFound",
    "SlaStoreError",
    "StoredCalendar",
    "StoredConfigError",
    "StoredPolicy",
    "TenantSla",
    "VersionConflict",
    "create_policy",
    "delete_calendar",
    "load_sla_configs",
    "load_tenant",
    "put_calendar",
    "pydantic_problems",
    "update_policy",
    "withdraw_policy",
]

NOTIFY_CHANNEL: Final = "supportpulse_sla"
# First key of pg_advisory_xact_lock(int, int) ("SLA" in ASCII); the second is hashtext(tenant).
# Two tenants whose names hash alike merely wait for each other.
LOCK_CLASS: Final = 0x534C41
POSITION_GAP: Final = 1024.0
# Policy fields stored in their own columns rather than in the body.
_COLUMNS: Final = frozenset({"tenant", "name", "version", "effective_from"})
_UNKNOWN_CALENDAR: Final = re.compile(r": (first_response|next_reply|resolution) names unknown calendar ")


class SlaStoreError(Exception):
    """A write refused; the message says why."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str  # dotted path in the policy or calendar, e.g. first_response.seconds
    reason: str


class InvalidSla(SlaStoreError):
    """The write would leave the tenant's SLA config invalid; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = list(problems)


class NotFound(SlaStoreError):
    pass


class Conflict(SlaStoreError):
    """The write contradicts the stored state (it exists already, it is in use, ...)."""


class VersionConflict(Conflict):
    """Another version of the policy was added concurrently."""


class CalendarInUse(Conflict):
    pass


class StoredConfigError(SlaStoreError):
    """Rows in Postgres that do not make a valid config (written around this module)."""

    def __init__(self, tenant: str, problem: str) -> None:
        super().__init__(f"stored SLA config of tenant {tenant!r} is invalid: {problem}")
        self.tenant = tenant


@dataclass(frozen=True, slots=True)
class StoredCalendar:
    calendar: Calendar
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    policy: Policy
    position: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TenantSla:
    """One tenant's stored calendars (by name) and policy versions (in list order)."""

    tenant: str
    calendars: tuple[StoredCalendar, ...] = ()
    policies: tuple[StoredPolicy, ...] = ()
    config: SlaConfig = field(default_factory=SlaConfig)

    def calendar(self, name: str) -> StoredCalendar | None:
        return next((c for c in self.calendars if c.calendar.name == name), None)

    def versions(self, name: str) -> list[StoredPolicy]:
        return sorted((p for p in self.policies if p.policy.name == name), key=lambda p: p.policy.version)

    def latest(self) -> list[StoredPolicy]:
        """The highest version of each policy (withdrawn ones included), in list order."""
        last: dict[str, StoredPolicy] = {}
        for stored in self.policies:
            held = last.get(stored.policy.name)
            if held is None or stored.policy.version > held.policy.version:
                last[stored.policy.name] = stored
        return sorted(last.values(), key=_order)

    def effective(self, at: datetime) -> list[StoredPolicy]:
        """The active versions at ``at``, in match order (as :func:`effective_policies` picks them)."""
        by_key = {(p.policy.name, p.policy.version): p for p in self.policies}
        chosen = effective_policies([p.policy for p in self.policies], self.tenant, at)
        return [by_key[(p.name, p.version)] for p in chosen]


def _order(stored: StoredPolicy) -> tuple[float, str, int]:
    return (stored.position, stored.policy.name, stored.policy.version)


async def load_sla_configs(conn: AsyncConnection) -> dict[str, SlaConfig]:
    """Every tenant's calendars and policy versions as one validated :class:`SlaConfig` each.

    Policies come in list order (position, then name, version). Tenants with no calendar and
    no policy are absent. Raises :class:`StoredConfigError` naming the tenant if stored rows
    do not validate (only possible when written around this module).
    """
    return {tenant: stored.config for tenant, stored in (await _load(conn, None)).items()}


async def load_tenant(conn: AsyncConnection, tenant: str) -> TenantSla:
    """One tenant's stored SLA config (empty when it has none)."""
    return (await _load(conn, tenant)).get(tenant) or TenantSla(tenant)


async def _load(conn: AsyncConnection, tenant: str | None) -> dict[str, TenantSla]:
    cal, pol = sla_calendars.c, sla_policies.c
    calendar_query = select(cal.tenant, cal.name, cal.body, cal.updated_at)
    # Sorted here, not by ORDER BY: the database's collation may order names unlike Python.
    policy_query = select(
        pol.tenant, pol.name, pol.version, pol.effective_from, pol.position, pol.body, pol.created_at
    )
    if tenant is not None:
        calendar_query = calendar_query.where(cal.tenant == tenant)
        policy_query = policy_query.where(pol.tenant == tenant)
    calendars: dict[str, list[StoredCalendar]] = {}
    policies: dict[str, list[StoredPolicy]] = {}
    for row in await conn.execute(calendar_query):
        try:
            calendar = Calendar.model_validate({**row.body, "name": row.name})
        except ValidationError as exc:
            raise StoredConfigError(row.tenant, f"calendar {row.name!r}: {exc}") from exc
        calendars.setdefault(row.tenant, []).append(StoredCalendar(calendar, row.updated_at))
    for prow in await conn.execute(policy_query):
        keys = {"tenant": prow.tenant, "name": prow.name, "version": prow.version}
        try:
            policy = Policy.model_validate({**prow.body, **keys, "effective_from": prow.effective_from})
        except ValidationError as exc:
            raise StoredConfigError(prow.tenant, f"policy {prow.name!r} v{prow.version}: {exc}") from exc
        policies.setdefault(prow.tenant, []).append(StoredPolicy(policy, prow.position, prow.created_at))
    loaded: dict[str, TenantSla] = {}
    for name in sorted(calendars.keys() | policies.keys()):
        cals = tuple(sorted(calendars.get(name, ()), key=lambda c: c.calendar.name))
        pols = tuple(sorted(policies.get(name, ()), key=_order))
        try:
            config = SlaConfig(
                calendars=tuple(c.calendar for c in cals), policies=tuple(p.policy for p in pols)
            )
        except ValidationError as exc:
            raise StoredConfigError(name, str(exc)) from exc
        loaded[name] = TenantSla(name, cals, pols, config)
    return loaded


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """Pydantic's errors as field problems (``loc`` joined with dots)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(FieldProblem(".".join(p for p in (prefix, where) if p) or "body", error["msg"]))
    return problems


def _field_of(problem: str) -> str:
    """The request field a config-level problem of a written policy is about."""
    unknown = _UNKNOWN_CALENDAR.search(problem)
    if unknown:
        return f"{unknown[1]}.calendar"
    if "takes effect" in problem:
        return "effective_from"
    if "is not last" in problem:
        # The policy's place in the list is wrong (or it should not be a default): "before" sets it.
        return "before"
    return "policies"


def _validated(calendars: Iterable[Calendar], policies: Iterable[StoredPolicy]) -> SlaConfig:
    ordered = sorted(policies, key=_order)
    try:
        return SlaConfig(calendars=tuple(calendars), policies=tuple(p.policy for p in ordered))
    except ValidationError as exc:
        problems: list[FieldProblem] = []
        for error in exc.errors():
            cause = error.get("ctx", {}).get("error")
            if isinstance(cause, PolicyError):
                problems += [FieldProblem(_field_of(p), p) for p in cause.problems]
            else:  # a calendar-level rule: duplicate or reserved names
                problems.append(FieldProblem("name", str(cause or error["msg"])))
        raise InvalidSla(problems) from None


def _utc(value: datetime, name: str = "effective_from") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidSla([FieldProblem(name, "needs a UTC offset (e.g. 2026-06-01T00:00:00Z)")])
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidSla([FieldProblem(name, f"{value.isoformat()} is out of range")]) from None


async def _begin_write(conn: AsyncConnection, tenant: str) -> TenantSla:
    """Lock the tenant's SLA config for this transaction and read it as it is now."""
    level = await conn.get_isolation_level()
    if level != "READ COMMITTED":
        # Under a snapshot taken before the lock, the config read after it could be stale.
        raise RuntimeError(f"SLA writes need a READ COMMITTED transaction, not {level}")
    await conn.execute(select(func.pg_advisory_xact_lock(LOCK_CLASS, func.hashtext(tenant))))
    return await load_tenant(conn, tenant)


async def _notify(conn: AsyncConnection, tenant: str) -> None:
    await conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, tenant)))


def _is_unique_violation(exc: IntegrityError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "23505"


async def put_calendar(
    conn: AsyncConnection, tenant: str, calendar: Calendar, *, replace: bool = True
) -> tuple[StoredCalendar, bool]:
    """Insert the calendar, or replace the body of the one of that name (``replace=False``:
    :class:`Conflict` if it exists). Returns it and whether it was created."""
    stored = await _begin_write(conn, tenant)
    exists = stored.calendar(calendar.name) is not None
    if exists and not replace:
        raise Conflict(f"calendar {calendar.name!r} exists; PUT replaces it")
    others = [c.calendar for c in stored.calendars if c.calendar.name != calendar.name]
    _validated([*others, calendar], stored.policies)
    body = calendar.model_dump(mode="json", exclude={"name"})
    c = sla_calendars.c
    stmt: Executable
    if exists:
        stmt = (
            update(sla_calendars)
            .where(c.tenant == tenant, c.name == calendar.name)
            .values(body=body, updated_at=func.now())
            .returning(c.updated_at)
        )
    else:
        stmt = (
            insert(sla_calendars).values(tenant=tenant, name=calendar.name, body=body).returning(c.updated_at)
        )
    try:
        updated_at = (await conn.execute(stmt)).scalar_one()
    except IntegrityError as exc:
        if _is_unique_violation(exc):  # inserted around the lock
            raise Conflict(f"calendar {calendar.name!r} was created concurrently; retry") from None
        raise
    await _notify(conn, tenant)
    return StoredCalendar(calendar, updated_at), not exists


async def delete_calendar(conn: AsyncConnection, tenant: str, name: str) -> None:
    """Delete a calendar no policy version names.

    A version still naming it would make the config invalid: the current versions need it to
    compute deadlines, and superseded ones stay in history (a replay judges old conversations
    by them). Raises :class:`CalendarInUse` saying which, :class:`NotFound` if absent.
    """
    stored = await _begin_write(conn, tenant)
    if stored.calendar(name) is None:
        raise NotFound(f"no calendar {name!r}")
    latest = {(p.policy.name, p.policy.version) for p in stored.latest()}
    using = [
        p.policy for p in stored.policies if any(t.calendar == name for t in p.policy.targets().values())
    ]
    current = sorted(
        f"{p.name!r} (v{p.version})" for p in using if p.active and (p.name, p.version) in latest
    )
    if current:
        raise CalendarInUse(f"calendar {name!r} is used by policies {', '.join(current)}; change them first")
    if using:
        earlier = sorted(f"{p.name} v{p.version}" for p in using)
        raise CalendarInUse(
            f"calendar {name!r} is named by earlier or withdrawn policy versions ({', '.join(earlier)}), "
            "which history keeps for replays; replace its hours with PUT instead of deleting it"
        )
    _validated([c.calendar for c in stored.calendars if c.calendar.name != name], stored.policies)
    c = sla_calendars.c
    await conn.execute(delete(sla_calendars).where(c.tenant == tenant, c.name == name))
    await _notify(conn, tenant)


def _policy(
    tenant: str, name: str, version: int, effective_from: datetime, fields: Mapping[str, Any], active: bool
) -> Policy:
    reserved = sorted(_COLUMNS.intersection(fields) | ({"active"} & fields.keys()))
    if reserved:
        raise InvalidSla([FieldProblem(key, "set by the store, not by the body") for key in reserved])
    keys = {"tenant": tenant, "name": name, "version": version, "effective_from": effective_from}
    try:
        return Policy.model_validate({**fields, **keys, "active": active})
    except ValidationError as exc:
        raise InvalidSla(pydantic_problems(exc)) from None


def _place_before(others: Sequence[StoredPolicy], target: StoredPolicy) -> float:
    below = [p.position for p in others if p.position < target.position]
    if not below:
        return target.position - POSITION_GAP
    previous = max(below)
    if previous + 1 < target.position:
        return previous + 1
    middle = (previous + target.position) / 2
    if not previous < middle < target.position:
        raise InvalidSla(
            [FieldProblem("before", f"no room left before {target.policy.name!r}; place it elsewhere")]
        )
    return middle


def _position(
    stored: TenantSla, name: str, before: str | None, *, is_default: bool, keep: float | None
) -> float:
    others = [p for p in stored.latest() if p.policy.name != name]
    if before is not None:
        if before == name:
            raise InvalidSla([FieldProblem("before", "a policy cannot go before itself")])
        target = next((p for p in others if p.policy.name == before), None)
        if target is None:
            raise InvalidSla([FieldProblem("before", f"no policy {before!r} in this tenant")])
        return _place_before(others, target)
    if keep is not None:
        return keep
    default = next((p for p in others if p.policy.active and p.policy.is_default), None)
    if default is not None and not is_default:
        return _place_before(others, default)
    return max((p.position for p in stored.policies), default=-POSITION_GAP) + POSITION_GAP


async def _add_version(
    conn: AsyncConnection, stored: TenantSla, policy: Policy, position: float
) -> StoredPolicy:
    new = StoredPolicy(policy, position, policy.effective_from)
    _validated([c.calendar for c in stored.calendars], [*stored.policies, new])
    p = sla_policies.c
    body = policy.model_dump(mode="json", exclude=set(_COLUMNS))
    stmt = (
        insert(sla_policies)
        .values(
            tenant=policy.tenant,
            name=policy.name,
            version=policy.version,
            effective_from=policy.effective_from,
            position=position,
            body=body,
        )
        .returning(p.created_at)
    )
    try:
        created_at = (await conn.execute(stmt)).scalar_one()
    except IntegrityError as exc:
        if _is_unique_violation(exc):
            raise VersionConflict(
                f"policy {policy.name!r} v{policy.version} was added concurrently; reload and retry"
            ) from None
        raise
    await _notify(conn, policy.tenant)
    return StoredPolicy(policy, position, created_at)


async def create_policy(
    conn: AsyncConnection,
    tenant: str,
    name: str,
    fields: Mapping[str, Any],
    *,
    effective_from: datetime | None = None,
    before: str | None = None,
    now: datetime | None = None,
) -> StoredPolicy:
    """Add version 1 of a new policy (:class:`Conflict` if the name exists, even withdrawn).

    ``fields``: the policy's conditions, targets, ``pausing_statuses`` and ``at_risk_share``
    (:class:`Policy` fields but tenant, name, version, effective_from and active).
    ``effective_from`` defaults to ``now`` (default: the wall clock).
    """
    start = _utc(effective_from or now or datetime.now(UTC))
    policy = _policy(tenant, name, 1, start, fields, active=True)
    stored = await _begin_write(conn, tenant)
    if stored.versions(name):
        raise Conflict(f"policy {name!r} exists; PUT adds a version of it")
    position = _position(stored, name, before, is_default=policy.is_default, keep=None)
    return await _add_version(conn, stored, policy, position)


async def _next_version(
    conn: AsyncConnection,
    tenant: str,
    name: str,
    fields: Mapping[str, Any] | None,
    *,
    active: bool,
    effective_from: datetime | None,
    before: str | None,
    now: datetime | None,
) -> StoredPolicy:
    start = _utc(effective_from or now or datetime.now(UTC))
    if fields is not None:  # validate the body before waiting for anything
        _policy(tenant, name, 1, start, fields, active=active)
    p = sla_policies.c
    # The version this edit was made against: read before the lock, see the module docstring.
    base = (
        await conn.execute(select(func.max(p.version)).where(p.tenant == tenant, p.name == name))
    ).scalar_one()
    if base is None:
        raise NotFound(f"no policy {name!r}")
    stored = await _begin_write(conn, tenant)
    versions = stored.versions(name)
    last = versions[-1]
    if last.policy.version != base:
        raise VersionConflict(
            f"policy {name!r} v{last.policy.version} was added while this change was based on v{base}; "
            "reload and retry"
        )
    if fields is None:
        if not last.policy.active:
            raise Conflict(f"policy {name!r} is already withdrawn (v{last.policy.version})")
        fields = last.policy.model_dump(exclude={*_COLUMNS, "active"})
    policy = _policy(tenant, name, base + 1, start, fields, active=active)
    position = _position(stored, name, before, is_default=policy.is_default, keep=last.position)
    return await _add_version(conn, stored, policy, position)


async def update_policy(
    conn: AsyncConnection,
    tenant: str,
    name: str,
    fields: Mapping[str, Any],
    *,
    effective_from: datetime | None = None,
    before: str | None = None,
    now: datetime | None = None,
) -> StoredPolicy:
    """Add the next version of a policy with these ``fields`` (the whole body, active again if
    it was withdrawn). Raises :class:`NotFound`, :class:`VersionConflict`, :class:`InvalidSla`."""
    return await _next_version(
        conn, tenant, name, fields, active=True, effective_from=effective_from, before=before, now=now
    )


async def withdraw_policy(
    conn: AsyncConnection,
    tenant: str,
    name: str,
    *,
    effective_from: datetime | None = None,
    now: datetime | None = None,
) -> StoredPolicy:
    """Add an inactive version (the last body, ``active: false``) from ``effective_from`` on."""
    return await _next_version(
        conn, tenant, name, None, active=False, effective_from=effective_from, before=None, now=now
    )
