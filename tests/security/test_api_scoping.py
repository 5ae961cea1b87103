"""API keys are scoped to tenants, on every route the API serves.

The routes are enumerated from ``app.routes`` (not from a list kept here), so a new route is
covered or fails ``test_every_route_is_tenant_scoped_or_operational``. The tenant is asked for
with ``?tenant=``, or in the path (``/v1/tenants/{tenant}/...``); either way the same check
(``tenant_scope``) decides. For each route:

* a key asking for a tenant it may not read gets 403, whatever filters come with the request,
  and the answer carries no data;
* what a key scoped to acme sees, with any filter (channel, team, queue, agent, label,
  group_by, windows), is identical on the seeded database and on a copy with every other
  tenant's rows deleted: tenant B's rows cannot change, let alone show in, tenant A's answers;
* /metrics, when protected: 401 without a valid key, 403 without the metrics flag, and a
  tenant-scoped key sees exactly its tenants' series (and the API's own, untenanted ones).
"""

from __future__ import annotations

import itertools
from typing import Any, Final
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families

from services.api.deps import tenant_scope
from services.api.sla.endpoints import path_tenant
from tests.security.conftest import ApiFactory, serving
from tests.security.routes import api_routes, route_table

pytestmark = pytest.mark.integration

# Routes that read no tenant's data, or (/metrics) scope it by the key's tenants instead.
OPERATIONAL: Final = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
PROBLEM_FIELDS: Final = {"type", "title", "status", "detail", "errors"}
# The dependencies that authorise the tenant: from ?tenant=, or from the path (it calls tenant_scope).
TENANT_CHECKS: Final = (tenant_scope, path_tenant)

# Filters whose values exist in both tenants (same agent and label names), alone and combined.
FILTERS: Final[list[dict[str, Any]]] = [
    {},
    {"channel": "chat"},
    {"channel": "chat,phone"},
    {"team": "support"},
    {"queue": "sales"},
    {"agent": "alice"},
    {"agent": ["alice", "bob"]},
    {"label": "vip"},
    {"label": "billing"},
    {"group_by": "agent"},
    {"group_by": "label"},
    {"group_by": "channel,team"},
    {"group_by": "agent,label"},
    {"agent": "alice", "label": "vip"},
    {"channel": "chat", "team": "support", "agent": "alice", "label": "vip", "group_by": "label"},
    {"window": "24h", "agent": "alice"},
    {"window": "7d", "group_by": "agent"},
    {"period": "today", "label": "vip"},
    {"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T11:00:00Z", "group_by": "channel"},
]


def scoped_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [route for route in api_routes(app) if route not in OPERATIONAL]


def _path(path: str, conversation: str = "c-story", tenant: str | None = None) -> str:
    """A route's URL; a tenant in the path is the one asked for (the key's own, acme, by default).

    A ``?tenant=`` sent along to a path-tenant route is ignored by it; the path decides.
    """
    path = path.replace("{conversation_id}", conversation).replace("{name}", "office")
    return path.replace("{tenant}", quote(tenant if tenant is not None else "acme", safe=""))


def _required(path: str) -> dict[str, Any]:
    return {"kpi": "conversations_created"} if path == "/v1/kpis/timeseries" else {}


def _depends_on(route: APIRoute, dependency: Any) -> bool:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is dependency:
            return True
        stack.extend(dependant.dependencies)
    return False


def test_every_route_is_tenant_scoped_or_operational(api_factory: ApiFactory) -> None:
    app = api_factory()
    routes = route_table(app, documented_only=False)
    # Undocumented routes would escape the OpenAPI-driven fuzzing: there are none but FastAPI's own.
    assert set(routes) == set(route_table(app)), set(routes) - set(route_table(app))
    served = api_routes(app)
    assert set(OPERATIONAL) <= set(served)
    scoped = scoped_routes(app)
    assert scoped, served
    for method, path in scoped:
        route = routes[(method, path)]
        assert any(_depends_on(route, check) for check in TENANT_CHECKS), (
            f"{method} {path} reads data without the tenant scope check"
        )
        operation = app.openapi()["paths"][path][method.lower()]
        assert operation.get("security") == [{"HTTPBearer": []}], path
        assert "403" in operation["responses"], path


async def test_a_key_never_reads_a_tenant_it_may_not_read(api_factory: ApiFactory) -> None:
    app = api_factory()
    denied = [
        ("acme-key", "globex"),
        ("globex-key", "acme"),
        ("both-key", "initech"),
        ("acme-key", "initech"),
    ]
    tricks = ["globex", "GLOBEX", "globex ", " globex", "globex\x00", "*", "acme,globex", "%2A"]
    async with serving(app) as client:
        for (method, path), (key, tenant), filters in itertools.product(scoped_routes(app), denied, FILTERS):
            params = {**_required(path), **filters, "tenant": tenant}
            response = await client.request(
                method, _path(path, tenant=tenant), params=params, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 403, (path, key, tenant, filters, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert set(body) <= PROBLEM_FIELDS and body["status"] == 403, body
            assert body["detail"] == f"this API key may not read tenant {tenant!r}"
        # Spellings of another tenant's name: refused (or unknown to the operator), never served.
        for (method, path), tenant in itertools.product(scoped_routes(app), tricks):
            params = {**_required(path), "tenant": tenant}
            response = await client.request(
                method,
                _path(path, tenant=tenant),
                params=params,
                headers={"Authorization": "Bearer acme-key"},
            )
            # A NUL is refused as malformed (422) before the tenant is even looked at.
            expected = 422 if "\x00" in tenant else 403
            assert response.status_code == expected, (path, tenant, response.text)
        # A repeated parameter cannot smuggle a second tenant past the check.
        for method, path in scoped_routes(app):
            query = [("tenant", "acme"), ("tenant", "globex"), *_required(path).items()]
            response = await client.request(
                method,
                _path(path, tenant="globex"),
                params=query,
                headers={"Authorization": "Bearer acme-key"},
            )
            assert response.status_code in (403, 422), (path, response.text)


async def _answers(client: httpx.AsyncClient, app: FastAPI, key: str, tenant: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for method, path in scoped_routes(app):
        conversations = ["c-story", "c-open-1", "call-1", "g-open-1"] if "{conversation_id}" in path else [""]
        for filters, conversation in itertools.product(FILTERS, conversations):
            params = {**_required(path), **filters}
            if tenant is not None:
                params["tenant"] = tenant
            response = await client.request(
                method,
                _path(path, conversation, tenant),
                params=params,
                headers={"Authorization": f"Bearer {key}"},
            )
            found[f"{method} {path} {conversation} {sorted(filters.items())}"] = (
                response.status_code,
                response.json(),
            )
    return found


async def test_another_tenants_rows_never_change_what_a_scoped_key_sees(api_factory: ApiFactory) -> None:
    full, alone = api_factory(database="full"), api_factory(database="acme-only")
    async with serving(full) as on_full, serving(alone) as on_alone:
        seen = await _answers(on_full, full, "acme-key", None)
        reference = await _answers(on_alone, alone, "acme-key", None)
        # The same acme answers whoever asks for acme: the operator's key, or a two-tenant key.
        operator = await _answers(on_full, full, "operator-key", "acme")
        both = await _answers(on_full, full, "both-key", "acme")
    assert seen.keys() == reference.keys()
    differing = [name for name in seen if seen[name] != reference[name]]
    assert differing == [], differing[:5]
    assert operator == seen and both == seen
    statuses = {status for status, _ in seen.values()}
    assert 200 in statuses, statuses
    # globex's conversation is not found through acme's key, even by its exact id.
    for name, (status, _) in seen.items():
        if " g-open-1 " in name:
            assert status == 404, name
    # The seed gives globex 50 conversations by agent alice labelled vip; acme has 1 of alice's.
    kpis = seen["GET /v1/kpis  [('agent', 'alice'), ('label', 'vip')]"][1]
    assert kpis["groups"][0]["kpis"]["conversations_created"] == 1


def _series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.startswith(("process_", "python_", "supportpulse_api_"))
    }


async def test_protected_metrics(api_factory: ApiFactory) -> None:
    app = api_factory(api_metrics_protected=True)
    async with serving(app) as client:
        await app.state.api.exporter.refresh()

        async def scrape(key: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
            return await client.get("/metrics", headers=headers)

        for key in (None, "", "wrong-key", "acme-keyX", "ACME-KEY", "Basic acme-key"):
            response = await scrape(key)
            assert response.status_code == 401, key
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.headers["content-type"] == "application/problem+json"
            assert "supportpulse_" not in response.text
        for key in ("acme-key", "both-key", "operator-nometrics-key"):
            response = await scrape(key)
            assert response.status_code == 403, key
            assert "supportpulse_" not in response.text
        everything = _series((await scrape("operator-key")).text)
        assert {dict(labels).get("tenant") for _, labels, _ in everything} >= {"acme", "globex"}
        for key, tenant in (("globex-key", "globex"), ("acme-metrics-key", "acme")):
            response = await scrape(key)
            assert response.status_code == 200, key
            mine = _series(response.text)
            # Exactly the operator's view of this tenant, plus the untenanted series.
            expected = {s for s in everything if dict(s[1]).get("tenant", tenant) == tenant}
            assert mine == expected, key
            assert {dict(labels).get("tenant") for _, labels, _ in mine} <= {None, tenant}
