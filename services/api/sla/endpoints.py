"""/v1/tenants/{tenant}/sla/calendars and /v1/tenants/{tenant}/sla/policies.

Policies are versioned, never edited in place: PUT adds the next version, DELETE adds an
inactive one, and GET ?at= shows the list in force at an instant (see docs/sla.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Response

from services.api.deps import Conn, Key, State, TenantScope, tenant_scope
from services.api.errors import AUTH_RESPONSES, forbidden, problem_response
from services.api.sla import service
from services.api.sla.schemas import (
    CalendarCreate,
    CalendarFields,
    CalendarList,
    CalendarOut,
    Instant,
    PolicyCreate,
    PolicyFields,
    PolicyHistory,
    PolicyList,
    PolicyVersion,
)
from shared.sla.calendar import Name

router = APIRouter(tags=["sla"], responses=AUTH_RESPONSES)

BASE: Final = "/v1/tenants/{tenant}/sla"
_LOCATION: Final = {"Location": {"description": "The created resource.", "schema": {"type": "string"}}}
_409: Final = problem_response("Conflicts with the stored configuration or a concurrent change.")
_404: Final = problem_response("No such tenant, or no such calendar or policy in it.")


async def path_tenant(
    state: State,
    key: Key,
    tenant: Annotated[
        str, Path(description="The tenant whose SLA configuration this is.", examples=["acme"])
    ],
) -> TenantScope:
    """The same check as ``?tenant=`` elsewhere: 403 for a tenant the key may not read, then 404."""
    return await tenant_scope(state, key, tenant)


async def path_tenant_admin(scope: Annotated[TenantScope, Depends(path_tenant)], key: Key) -> TenantScope:
    """Writes also need a key with ``sla_admin: true``: a dashboard's key only reads."""
    if not key.sla_admin:
        raise forbidden("this API key may not change SLA configuration (it lacks sla_admin: true)")
    return scope


Tenant = Annotated[TenantScope, Depends(path_tenant)]
AdminTenant = Annotated[TenantScope, Depends(path_tenant_admin)]
CalendarName = Annotated[Name, Path(description="The calendar's name.", examples=["paris-office"])]
PolicyName = Annotated[Name, Path(description="The policy's name.", examples=["email"])]


def _location(tenant: str, kind: str, name: str) -> str:
    return f"/v1/tenants/{quote(tenant, safe='')}/sla/{kind}/{quote(name, safe='')}"


# -- calendars -----------------------------------------------------------------------------


@router.get(f"{BASE}/calendars", response_model=CalendarList, summary="The tenant's business-hours calendars")
async def list_calendars(tenant: Tenant, conn: Conn) -> dict[str, Any]:
    return await service.list_calendars(conn, tenant.name)


@router.get(
    f"{BASE}/calendars/{{name}}", response_model=CalendarOut, summary="One calendar", responses={404: _404}
)
async def get_calendar(tenant: Tenant, conn: Conn, name: CalendarName) -> dict[str, Any]:
    return await service.get_calendar(conn, tenant.name, name)


@router.post(
    f"{BASE}/calendars",
    response_model=CalendarOut,
    status_code=201,
    summary="Create a calendar",
    description="409 if the name exists (PUT replaces). The periods are validated: overlaps, an end before "
    "its start (split at midnight), unknown time zones, a week with no open period: 422s naming the field.",
    responses={201: {"headers": _LOCATION}, 409: _409},
)
async def create_calendar(state: State, tenant: AdminTenant, body: CalendarCreate, response: Response) -> Any:
    out, _ = await service.put_calendar(state, tenant.name, body.name, body, replace=False)
    response.headers["Location"] = _location(tenant.name, "calendars", body.name)
    return out


@router.put(
    f"{BASE}/calendars/{{name}}",
    response_model=CalendarOut,
    summary="Create or replace a calendar",
    description="Replacing the hours applies to deadlines computed from then on (and to all history at "
    "the next replay). 201 when created, 200 when replaced.",
    responses={201: {"description": "Created.", "model": CalendarOut, "headers": _LOCATION}, 409: _409},
)
async def put_calendar(
    state: State, tenant: AdminTenant, name: CalendarName, body: CalendarFields, response: Response
) -> Any:
    out, created = await service.put_calendar(state, tenant.name, name, body, replace=True)
    if created:
        response.status_code = 201
        response.headers["Location"] = _location(tenant.name, "calendars", name)
    return out


@router.delete(
    f"{BASE}/calendars/{{name}}",
    status_code=204,
    response_class=Response,
    summary="Delete a calendar no policy version names",
    description="409 while a policy version names it: the current versions need it, and earlier ones stay "
    "in history for replays (replace its hours with PUT instead).",
    responses={404: _404, 409: _409},
)
async def delete_calendar(state: State, tenant: AdminTenant, name: CalendarName) -> Response:
    await service.delete_calendar(state, tenant.name, name)
    return Response(status_code=204)


# -- policies ------------------------------------------------------------------------------


@router.get(
    f"{BASE}/policies",
    response_model=PolicyList,
    summary="The policy list in force at an instant, or every version",
)
async def list_policies(
    tenant: Tenant,
    conn: Conn,
    at: Annotated[
        Instant | None,
        Query(
            description="An instant with its offset: the active versions in force then, in match order "
            "(the aggregator matches a conversation at its creation). Without: every version stored.",
            examples=["2026-12-02T00:00:00Z"],
        ),
    ] = None,
) -> dict[str, Any]:
    return await service.list_policies(conn, tenant.name, at)


@router.get(
    f"{BASE}/policies/{{name}}",
    response_model=PolicyHistory,
    summary="One policy and all its versions",
    responses={404: _404},
)
async def get_policy(tenant: Tenant, conn: Conn, name: PolicyName) -> dict[str, Any]:
    return await service.get_policy(conn, tenant.name, name)


@router.post(
    f"{BASE}/policies",
    response_model=PolicyVersion,
    status_code=201,
    summary="Create a policy (its version 1)",
    description="Validated with the tenant's whole configuration: a business target naming an unknown "
    "calendar, a default policy (no condition) that is not last, a policy after the default, non-positive "
    "targets are 422s naming the field. 409 if the name exists (PUT adds a version).",
    responses={201: {"headers": _LOCATION}, 409: _409},
)
async def create_policy(state: State, tenant: AdminTenant, body: PolicyCreate, response: Response) -> Any:
    out = await service.create_policy(state, tenant.name, body)
    response.headers["Location"] = _location(tenant.name, "policies", body.name)
    return out


@router.put(
    f"{BASE}/policies/{{name}}",
    response_model=PolicyVersion,
    summary="Add the next version of a policy",
    description="The body replaces the whole policy from `effective_from` (default: now) on; earlier "
    "versions stay for history. 409 when another version was added concurrently (reload and retry).",
    responses={404: _404, 409: _409},
)
async def update_policy(state: State, tenant: AdminTenant, name: PolicyName, body: PolicyFields) -> Any:
    return await service.update_policy(state, tenant.name, name, body)


@router.delete(
    f"{BASE}/policies/{{name}}",
    response_model=PolicyVersion,
    summary="Withdraw a policy (adds an inactive version)",
    description="From `effective_from` (default: now) the policy no longer applies; conversations created "
    "before keep it. 409 if already withdrawn or changed concurrently.",
    responses={404: _404, 409: _409},
)
async def withdraw_policy(
    state: State,
    tenant: AdminTenant,
    name: PolicyName,
    effective_from: Annotated[
        Instant | None,
        Query(
            description="When the withdrawal takes effect (default: now).", examples=["2027-01-01T00:00:00Z"]
        ),
    ] = None,
) -> Any:
    return await service.withdraw_policy(state, tenant.name, name, effective_from)
