"""Request dependencies: the app's state, the caller's API key, the tenant, a DB connection."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.errors import ApiError, forbidden, invalid, unauthorized
from services.api.settings import ApiSettings
from shared.tenants import ApiKey, TenantsConfig
from shared.windows import oldest_retained_minute

if TYPE_CHECKING:
    from services.api.metrics_export import KpiExporter


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class ApiState:
    """Everything requests share, built once by create_app."""

    settings: ApiSettings
    tenants: TenantsConfig
    engine: AsyncEngine
    clock: Callable[[], datetime]
    exporter: KpiExporter | None = None
    # sha256(key) -> key: a dict lookup on a digest leaks nothing useful about the secret,
    # unlike comparing the presented token with each key in turn.
    keys: dict[bytes, ApiKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = {_digest(k.key.get_secret_value()): k for k in self.tenants.api_keys}

    def authenticate(self, token: str) -> ApiKey | None:
        return self.keys.get(_digest(token))

    def minute_floor(self, now: datetime) -> datetime:
        return oldest_retained_minute(now, self.settings.minute_retention)


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]

bearer = HTTPBearer(
    auto_error=False, description="An API key from the tenants file: `Authorization: Bearer <key>`."
)


async def api_key(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    if credentials is None:
        raise unauthorized("missing bearer API key (Authorization: Bearer <key>)")
    key = state.authenticate(credentials.credentials)
    if key is None:
        raise unauthorized("unknown API key")
    return key


Key = Annotated[ApiKey, Depends(api_key)]


def may_read(key: ApiKey, tenant: str) -> bool:
    return "*" in key.tenants or tenant in key.tenants


@dataclass(frozen=True, slots=True)
class TenantScope:
    """The one tenant a request reads, already authorised."""

    name: str
    zone: ZoneInfo


async def tenant_scope(
    state: State,
    key: Key,
    tenant: Annotated[
        str | None,
        Query(
            description="Tenant to read. Optional when the API key reads exactly one tenant.",
            examples=["acme"],
        ),
    ] = None,
) -> TenantScope:
    if tenant is None:
        own = [t for t in key.tenants if t != "*"]
        if "*" in key.tenants or len(own) != 1:
            raise invalid("tenant", "required: this API key reads more than one tenant")
        tenant = own[0]
    # Authorise before looking the tenant up, so a scoped key cannot probe which tenants exist.
    if not may_read(key, tenant):
        raise forbidden(f"this API key may not read tenant {tenant!r}")
    config = state.tenants.tenant(tenant)
    if config is None:
        raise ApiError(404, f"unknown tenant {tenant!r}", reason="unknown-tenant")
    return TenantScope(tenant, config.zone)


Tenant = Annotated[TenantScope, Depends(tenant_scope)]


async def connection(state: State) -> AsyncIterator[AsyncConnection]:
    """One connection per request, in one read-only snapshot.

    REPEATABLE READ makes the counts query and the histogram query of a request see the
    same aggregator flush, so counts and quantiles agree.
    """
    async with state.engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        yield conn


Conn = Annotated[AsyncConnection, Depends(connection)]
