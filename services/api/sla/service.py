"""SLA configuration requests: one store call each, refusals turned into problem details.

Reads use the request's read-only snapshot; every write runs in a transaction of its own
(READ COMMITTED, as :mod:`shared.sla.store` needs), committed before the answer is sent, so
the aggregators' ``NOTIFY`` and the client's 2xx mean the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.deps import ApiState
from services.api.errors import ApiError
from services.api.sla.schemas import CalendarFields, PolicyCreate, PolicyFields
from shared.sla import store
from shared.sla.calendar import Calendar
from shared.sla.store import FieldProblem, StoredCalendar, StoredPolicy


def _invalid(problems: list[FieldProblem]) -> RequestValidationError:
    # Rendered by the app's handler exactly like FastAPI's own body errors: errors[].field names it.
    return RequestValidationError(
        [{"loc": ("body", *p.field.split(".")), "msg": p.reason, "type": "value_error"} for p in problems]
    )


@contextmanager
def refusals() -> Iterator[None]:
    """Store refusals as 404, 409 and 422 problems."""
    try:
        yield
    except store.InvalidSla as exc:
        raise _invalid(exc.problems) from None
    except store.NotFound as exc:
        raise ApiError(404, str(exc), reason="not-found") from None
    except store.Conflict as exc:
        raise ApiError(409, str(exc), reason="conflict") from None


def policy_out(stored: StoredPolicy) -> dict[str, Any]:
    return {
        **stored.policy.model_dump(mode="json"),
        "position": stored.position,
        "created_at": stored.created_at,
    }


def calendar_out(tenant: str, stored: StoredCalendar) -> dict[str, Any]:
    return {"tenant": tenant, **stored.calendar.model_dump(mode="json"), "updated_at": stored.updated_at}


def _calendar(name: str, fields: CalendarFields) -> Calendar:
    try:
        return Calendar.model_validate({**fields.model_dump(mode="json", exclude={"name"}), "name": name})
    except ValidationError as exc:
        problems = store.pydantic_problems(exc)
        # Rules of the whole calendar are about its week (nothing open) or its special dates.
        whole = [
            FieldProblem("week" if "open period" in p.reason else "holidays", p.reason)
            for p in problems
            if p.field == "body"
        ]
        raise _invalid([p for p in problems if p.field != "body"] + whole) from None


# -- calendars -----------------------------------------------------------------------------


async def list_calendars(conn: AsyncConnection, tenant: str) -> dict[str, Any]:
    stored = await store.load_tenant(conn, tenant)
    return {"tenant": tenant, "calendars": [calendar_out(tenant, c) for c in stored.calendars]}


async def get_calendar(conn: AsyncConnection, tenant: str, name: str) -> dict[str, Any]:
    found = (await store.load_tenant(conn, tenant)).calendar(name)
    if found is None:
        raise ApiError(404, f"no calendar {name!r} in tenant {tenant!r}", reason="not-found")
    return calendar_out(tenant, found)


async def put_calendar(
    state: ApiState, tenant: str, name: str, fields: CalendarFields, *, replace: bool
) -> tuple[dict[str, Any], bool]:
    calendar = _calendar(name, fields)
    with refusals():
        async with state.engine.begin() as conn:
            stored, created = await store.put_calendar(conn, tenant, calendar, replace=replace)
    return calendar_out(tenant, stored), created


async def delete_calendar(state: ApiState, tenant: str, name: str) -> None:
    with refusals():
        async with state.engine.begin() as conn:
            await store.delete_calendar(conn, tenant, name)


# -- policies ------------------------------------------------------------------------------


async def list_policies(conn: AsyncConnection, tenant: str, at: datetime | None) -> dict[str, Any]:
    stored = await store.load_tenant(conn, tenant)
    chosen = stored.policies if at is None else tuple(stored.effective(at))
    return {"tenant": tenant, "at": at, "policies": [policy_out(p) for p in chosen]}


async def get_policy(conn: AsyncConnection, tenant: str, name: str) -> dict[str, Any]:
    versions = (await store.load_tenant(conn, tenant)).versions(name)
    if not versions:
        raise ApiError(404, f"no policy {name!r} in tenant {tenant!r}", reason="not-found")
    out = [policy_out(v) for v in versions]
    return {"tenant": tenant, "name": name, "latest": out[-1], "versions": out}


async def create_policy(state: ApiState, tenant: str, body: PolicyCreate) -> dict[str, Any]:
    with refusals():
        async with state.engine.begin() as conn:
            stored = await store.create_policy(
                conn,
                tenant,
                body.name,
                body.rules(),
                effective_from=body.effective_from,
                before=body.before,
                now=state.clock(),
            )
    return policy_out(stored)


async def update_policy(state: ApiState, tenant: str, name: str, body: PolicyFields) -> dict[str, Any]:
    with refusals():
        async with state.engine.begin() as conn:
            stored = await store.update_policy(
                conn,
                tenant,
                name,
                body.rules(),
                effective_from=body.effective_from,
                before=body.before,
                now=state.clock(),
            )
    return policy_out(stored)


async def withdraw_policy(
    state: ApiState, tenant: str, name: str, effective_from: datetime | None
) -> dict[str, Any]:
    with refusals():
        async with state.engine.begin() as conn:
            stored = await store.withdraw_policy(
                conn, tenant, name, effective_from=effective_from, now=state.clock()
            )
    return policy_out(stored)
