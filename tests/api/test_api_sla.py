"""/v1/tenants/{tenant}/sla/calendars and /sla/policies on a real Postgres (a database of this module's own).

CRUD, versions and the ?at= view, every validation failure a 422 naming its field, 409s for
conflicts and for two concurrent PUTs of one policy, NOTIFY on commit, and tenant scoping on
every SLA route.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.api.app import create_app
from shared.db.scratch import driver_dsn, scratch_database
from shared.settings import CommonSettings
from shared.sla.store import LOCK_CLASS, NOTIFY_CHANNEL
from tests.api.conftest import TENANTS, api_settings
from tests.api.seed import NOW
from tests.security.routes import api_routes

pytestmark = pytest.mark.integration

BASE: Final = "/v1/tenants/{tenant}/sla"
OFFICE: Final[dict[str, Any]] = {
    "name": "office",
    "timezone": "Europe/Paris",
    "week": {"mon": ["09:00-12:30", {"start": "13:30", "end": "18:00"}], "tue": ["09:00-18:00"]},
    "holidays": ["2026-12-25"],
    "exceptions": {"2026-12-24": ["09:00-12:00"]},
}
EMAIL: Final[dict[str, Any]] = {
    "name": "email",
    "channels": ["email"],
    "first_response": {"seconds": 14400, "clock": "business", "calendar": "office"},
    "resolution": {"seconds": 259200},
}
CHAT: Final[dict[str, Any]] = {"name": "chat", "channels": ["chat"], "first_response": {"seconds": 300}}
DEFAULT: Final[dict[str, Any]] = {"name": "default", "first_response": {"seconds": 3600}}


@pytest.fixture(scope="module")
async def sla_database() -> AsyncIterator[str]:
    async with scratch_database(CommonSettings().database_dsn, "supportpulse_test_apisla_") as url:
        yield url


@pytest.fixture(scope="module")
async def sla_app(sla_database: str) -> AsyncIterator[FastAPI]:
    app = create_app(api_settings(sla_database), TENANTS, clock=lambda: NOW)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def raw(sla_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(driver_dsn(sla_database))
    await conn.execute("TRUNCATE sla_calendars, sla_policies")
    try:
        yield conn
    finally:
        await conn.close()


class Sla:
    """Calls an SLA route of a tenant with a key; ``path`` is relative to /v1/tenants/{tenant}/sla."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        *,
        tenant: str = "acme",
        key: str | None = "acme-key",
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        url = BASE.format(tenant=tenant) + path
        return await self.client.request(method, url, json=json, params=params, headers=headers)

    async def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = await self.call(method, path, **kw)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    async def problem(self, method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
        response = await self.call(method, path, **kw)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body: dict[str, Any] = response.json()
        assert body["status"] == status and body["detail"]
        return body

    async def invalid(self, method: str, path: str, **kw: Any) -> dict[str, str]:
        """A 422: {field: reason} of its errors."""
        body = await self.problem(method, path, 422, **kw)
        assert body["type"] == "https://supportpulse.dev/problems/invalid"
        return {e["field"]: e["reason"] for e in body["errors"]}


@pytest.fixture
async def sla(sla_app: FastAPI, raw: asyncpg.Connection) -> AsyncIterator[Sla]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sla_app), base_url="http://api.test") as c:
        yield Sla(c)


def versions(listing: dict[str, Any]) -> list[tuple[str, int]]:
    return [(p["name"], p["version"]) for p in listing["policies"]]


async def test_calendar_crud(sla: Sla) -> None:
    response = await sla.call("POST", "/calendars", json=OFFICE)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/tenants/acme/sla/calendars/office"
    created = response.json()
    assert (
        created["tenant"] == "acme" and created["name"] == "office" and created["timezone"] == "Europe/Paris"
    )
    assert created["week"]["mon"] == [{"start": "09:00", "end": "12:30"}, {"start": "13:30", "end": "18:00"}]
    assert created["exceptions"] == {"2026-12-24": [{"start": "09:00", "end": "12:00"}]}
    assert await sla.ok("GET", "/calendars/office") == created
    assert (await sla.ok("GET", "/calendars"))["calendars"] == [created]
    conflict = await sla.problem("POST", "/calendars", 409, json=OFFICE)
    assert "exists" in conflict["detail"]
    replaced = await sla.ok(
        "PUT", "/calendars/office", json={"timezone": "UTC", "week": {"fri": ["08:00-16:00"]}}
    )
    assert (replaced["timezone"], replaced["week"], replaced["holidays"]) == (
        "UTC",
        {"fri": [{"start": "08:00", "end": "16:00"}]},
        [],
    )
    response = await sla.call(
        "PUT", "/calendars/night", json={"week": {"sat": ["22:00-24:00"], "sun": ["00:00-06:00"]}}
    )
    assert response.status_code == 201 and response.headers["location"].endswith("/calendars/night")
    assert [c["name"] for c in (await sla.ok("GET", "/calendars"))["calendars"]] == ["night", "office"]
    # Another tenant sees none of them.
    assert await sla.ok("GET", "/calendars", tenant="globex", key="globex-key") == {
        "tenant": "globex",
        "calendars": [],
    }
    assert await sla.ok("DELETE", "/calendars/night", 204) is None
    await sla.problem("GET", "/calendars/night", 404)
    await sla.problem("DELETE", "/calendars/night", 404)


async def test_calendar_validation(sla: Sla, raw: asyncpg.Connection) -> None:
    errors = await sla.invalid(
        "POST", "/calendars", json={**OFFICE, "week": {"mon": ["09:00-12:30", "12:00-18:00"]}}
    )
    assert errors == {"week": "Value error, week.mon: periods 09:00-12:30 and 12:00-18:00 overlap"}
    errors = await sla.invalid("POST", "/calendars", json={**OFFICE, "week": {"mon": ["18:00-09:00"]}})
    assert "split" in errors["week.mon.0"] or "midnight" in errors["week.mon.0"], errors
    errors = await sla.invalid("POST", "/calendars", json={**OFFICE, "timezone": "Mars/Olympus"})
    assert errors == {"timezone": "Value error, unknown time zone 'Mars/Olympus'"}
    errors = await sla.invalid("POST", "/calendars", json={**OFFICE, "week": {}})
    assert errors == {"week": "Value error, calendar 'office' has no open period in its week"}
    errors = await sla.invalid("POST", "/calendars", json={**OFFICE, "holidays": ["2026-12-24"]})
    assert errors == {"holidays": "Value error, 2026-12-24 is both a holiday and an exception; keep one"}
    errors = await sla.invalid("POST", "/calendars", json={**OFFICE, "name": "always"})
    assert set(errors) == {"name"} and "reserved" in errors["name"]
    errors = await sla.invalid("POST", "/calendars", json={**OFFICE, "week": {"funday": ["09:00-10:00"]}})
    assert set(errors) == {"week.funday.[key]"}, errors
    errors = await sla.invalid("PUT", "/calendars/bad name", json={"week": {"mon": ["09:00-10:00"]}})
    assert set(errors) == {"name"}
    assert await raw.fetchval("SELECT count(*) FROM sla_calendars") == 0


async def test_policies_versions_and_the_list_at_an_instant(sla: Sla) -> None:
    await sla.ok("POST", "/calendars", 201, json=OFFICE)
    default = await sla.ok("POST", "/policies", 201, json=DEFAULT)
    assert default["effective_from"] == "2026-11-20T10:29:30Z"  # now, by the app's clock
    assert (default["version"], default["active"], default["position"]) == (1, True, 0.0)
    response = await sla.call(
        "POST", "/policies", json={**EMAIL, "effective_from": "2026-11-20T10:00:00+01:00"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/tenants/acme/sla/policies/email"
    email = response.json()
    assert email["effective_from"] == "2026-11-20T09:00:00Z"
    assert email["first_response"] == {"seconds": 14400.0, "clock": "business", "calendar": "office"}
    assert email["next_reply"] is None and email["pausing_statuses"] == ["pending", "snoozed"]
    await sla.ok("POST", "/policies", 201, json=CHAT)
    vip = await sla.ok("POST", "/policies", 201, json={"name": "vip", "labels": ["vip"], "before": "email"})
    # The default stays last; vip went where it was asked.
    listing = await sla.ok("GET", "/policies")
    assert listing["at"] is None
    assert versions(listing) == [("vip", 1), ("email", 1), ("chat", 1), ("default", 1)]
    assert vip["position"] < email["position"]

    # email v2 from December; chat withdrawn from 2026-11-25.
    v2 = await sla.ok(
        "PUT",
        "/policies/email",
        json={
            **{k: v for k, v in EMAIL.items() if k != "name"},
            "resolution": None,
            "effective_from": "2026-12-01T00:00:00Z",
        },
    )
    assert (v2["version"], v2["resolution"], v2["position"]) == (2, None, email["position"])
    gone = await sla.ok("DELETE", "/policies/chat", params={"effective_from": "2026-11-25T00:00:00Z"})
    assert (gone["version"], gone["active"], gone["first_response"]) == (
        2,
        False,
        {"seconds": 300.0, "clock": "calendar", "calendar": None},
    )

    async def at(instant: str) -> list[tuple[str, int]]:
        listing = await sla.ok("GET", "/policies", params={"at": instant})
        assert listing["at"] == instant.replace("+00:00", "Z")
        return versions(listing)

    assert await at("2026-11-20T09:30:00Z") == [("email", 1)]
    assert await at("2026-11-21T00:00:00Z") == [("vip", 1), ("email", 1), ("chat", 1), ("default", 1)]
    assert await at("2026-11-26T00:00:00Z") == [("vip", 1), ("email", 1), ("default", 1)]
    assert await at("2026-12-01T00:00:00Z") == [("vip", 1), ("email", 2), ("default", 1)]
    assert await at("2020-01-01T00:00:00Z") == []
    history = await sla.ok("GET", "/policies")
    assert versions(history) == [
        ("vip", 1),
        ("email", 1),
        ("email", 2),
        ("chat", 1),
        ("chat", 2),
        ("default", 1),
    ]
    one = await sla.ok("GET", "/policies/email")
    assert [v["version"] for v in one["versions"]] == [1, 2] and one["latest"] == v2
    await sla.problem("GET", "/policies/nope", 404)
    # PUT brings a withdrawn policy back (effective now by default); DELETE twice is a conflict.
    await sla.problem("DELETE", "/policies/chat", 409)
    await sla.problem("PUT", "/policies/chat", 422, json={"channels": ["chat"]})  # now is before its v2
    back = await sla.ok(
        "PUT", "/policies/chat", json={"channels": ["chat"], "effective_from": "2026-11-26T00:00:00Z"}
    )
    assert (back["version"], back["active"]) == (3, True)
    await sla.problem("PUT", "/policies/nope", 404, json={"channels": ["chat"]})
    await sla.problem("DELETE", "/policies/nope", 404)
    await sla.problem("POST", "/policies", 409, json=CHAT)
    # The calendar email names cannot go; another tenant's list is untouched.
    conflict = await sla.problem("DELETE", "/calendars/office", 409)
    assert "'email'" in conflict["detail"]
    assert (await sla.ok("GET", "/policies", tenant="globex", key="globex-key"))["policies"] == []


async def test_policy_validation(sla: Sla) -> None:
    await sla.ok("POST", "/calendars", 201, json=OFFICE)
    await sla.ok("POST", "/policies", 201, json=DEFAULT)
    await sla.ok("POST", "/policies", 201, json=EMAIL)
    before = await sla.ok("GET", "/policies")
    cases: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
        (
            "POST",
            "/policies",
            {**CHAT, "first_response": {"seconds": 0}},
            {"first_response.seconds": "Input should be greater than 0"},
        ),
        (
            "POST",
            "/policies",
            {**CHAT, "first_response": {"seconds": -60}},
            {"first_response.seconds": "Input should be greater than 0"},
        ),
        (
            "POST",
            "/policies",
            {**CHAT, "next_reply": {"seconds": 400 * 86400}},
            {"next_reply.seconds": "Input should be less than or equal to 31622400"},
        ),
        (
            "POST",
            "/policies",
            {**CHAT, "at_risk_share": 0},
            {"at_risk_share": "Input should be greater than 0"},
        ),
        (
            "POST",
            "/policies",
            {**CHAT, "first_response": {"seconds": 60, "clock": "business"}},
            {"first_response": "Value error, a business-time target names its calendar"},
        ),
        (
            "POST",
            "/policies",
            {**CHAT, "effective_from": "2026-12-01T00:00:00"},
            {"effective_from": "Input should have timezone info"},
        ),
        ("POST", "/policies", {**CHAT, "colour": "red"}, {"colour": "Extra inputs are not permitted"}),
        (
            "POST",
            "/policies",
            {**CHAT, "labels": ["a\x00b"]},
            {"labels.0": "Value error, contains a NUL character or an unpaired surrogate"},
        ),
        ("PUT", "/policies/email", {"channels": ["email"], "effective_from": "2020-01-01T00:00:00Z"}, {}),
    ]
    for method, path, body, expected in cases:
        errors = await sla.invalid(method, path, json=body)
        if expected:
            assert errors == expected, (body, errors)
        else:
            assert set(errors) == {"effective_from"} and "takes effect" in errors["effective_from"], errors
    # Rules of the whole configuration: the reason says what is wrong.
    errors = await sla.invalid(
        "POST",
        "/policies",
        json={
            **CHAT,
            "first_response": {"seconds": 60, "clock": "business", "calendar": "nope"},
            "resolution": {"seconds": 60, "clock": "business", "calendar": "nope"},
        },
    )
    assert set(errors) == {"first_response.calendar", "resolution.calendar"}
    assert "unknown calendar 'nope'" in errors["first_response.calendar"]
    errors = await sla.invalid("POST", "/policies", json={"name": "fallback"})
    assert set(errors) == {"before"} and "is not last" in errors["before"]
    errors = await sla.invalid("PUT", "/policies/email", json={"first_response": {"seconds": 60}})
    assert set(errors) == {"before"} and "acme/email v2: default policy" in errors["before"]
    errors = await sla.invalid("POST", "/policies", json={**CHAT, "before": "nope"})
    assert errors == {"before": "no policy 'nope' in this tenant"}
    errors = await sla.invalid("GET", "/policies", params={"at": "2026-12-01T00:00:00"})
    assert set(errors) == {"at"}
    errors = await sla.invalid("DELETE", "/policies/email", params={"effective_from": "yesterday"})
    assert set(errors) == {"effective_from"}
    # Nothing of the refused writes was kept.
    assert await sla.ok("GET", "/policies") == before


async def wait_for_advisory_waiters(raw: asyncpg.Connection, count: int) -> None:
    for _ in range(500):
        waiting = await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never saw {count} requests waiting for the tenant's lock")


async def test_two_concurrent_puts_of_one_policy(sla: Sla, raw: asyncpg.Connection) -> None:
    await sla.ok("POST", "/policies", 201, json=CHAT)
    # Both PUTs read v1, then wait for the tenant's lock (held here) before writing.
    await raw.execute("SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, "acme")
    puts = [
        asyncio.create_task(sla.call("PUT", "/policies/chat", json={"channels": ["chat"], "labels": [label]}))
        for label in ("a", "b")
    ]
    await wait_for_advisory_waiters(raw, 2)
    await raw.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS, "acme")
    responses = await asyncio.gather(*puts)
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    won = next(r for r in responses if r.status_code == 200).json()
    lost = next(r for r in responses if r.status_code == 409)
    assert lost.headers["content-type"] == "application/problem+json"
    assert "reload and retry" in lost.json()["detail"]
    stored = await sla.ok("GET", "/policies/chat")
    assert [(v["version"], v["labels"]) for v in stored["versions"]] == [(1, []), (2, won["labels"])]
    # Unsynchronised, as clients would send them: never a 5xx, never one version twice.
    many = await asyncio.gather(
        *(sla.call("PUT", "/policies/chat", json={"channels": ["chat"]}) for _ in range(6))
    )
    assert {r.status_code for r in many} <= {200, 409}, [r.text for r in many]
    made = sorted(r.json()["version"] for r in many if r.status_code == 200)
    assert len(made) == len(set(made)) >= 1
    assert [v["version"] for v in (await sla.ok("GET", "/policies/chat"))["versions"]] == list(
        range(1, 3 + len(made))
    )


async def test_notify_on_commit_and_not_on_refusal(sla: Sla, raw: asyncpg.Connection) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    await raw.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    await sla.ok("POST", "/calendars", 201, json=OFFICE)
    assert await asyncio.wait_for(heard.get(), 5) == "acme"
    await sla.ok("POST", "/policies", 201, json=CHAT, tenant="globex", key="globex-key")
    assert await asyncio.wait_for(heard.get(), 5) == "globex"
    await sla.invalid(
        "POST",
        "/policies",
        json={**CHAT, "first_response": {"seconds": 1, "clock": "business", "calendar": "x"}},
    )
    await sla.problem("DELETE", "/calendars/nope", 404)
    await sla.problem("POST", "/calendars", 409, json=OFFICE)
    await sla.problem("POST", "/policies", 403, json=CHAT, tenant="globex")
    await asyncio.sleep(0.5)
    assert heard.empty()


def sla_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [(method, path) for method, path in api_routes(app) if "/sla/" in path]


async def test_every_sla_route_is_tenant_scoped(sla_app: FastAPI, sla: Sla, raw: asyncpg.Connection) -> None:
    routes = sla_routes(sla_app)
    assert len(routes) == 10, routes
    await sla.ok("POST", "/calendars", 201, json=OFFICE, tenant="globex", key="globex-key")
    await sla.ok("POST", "/policies", 201, json=CHAT, tenant="globex", key="globex-key")
    stored = await raw.fetch(
        "SELECT * FROM sla_calendars UNION ALL SELECT tenant, name, body, created_at FROM sla_policies"
    )
    bodies = {
        "POST": {"/calendars": OFFICE, "/policies": CHAT},
        "PUT": {"/calendars/{name}": OFFICE, "/policies/{name}": {"channels": ["chat"]}},
    }
    names = {"/calendars/{name}": "office", "/policies/{name}": "chat"}
    for method, path in routes:
        relative = path.removeprefix(BASE)
        concrete = relative.replace("{name}", names.get(relative, ""))
        body = bodies.get(method, {}).get(relative)
        for key, tenant in (
            ("acme-key", "globex"),
            ("globex-key", "acme"),
            ("both-key", "initech"),
            ("acme-key", "*"),
        ):
            problem = await sla.problem(method, concrete, 403, key=key, tenant=tenant, json=body)
            assert problem["detail"] == f"this API key may not read tenant {tenant!r}"
        await sla.problem(method, concrete, 401, key=None, tenant="globex", json=body)
        await sla.problem(method, concrete, 401, key="wrong", tenant="globex", json=body)
        # A key that may read every tenant learns that an unknown one does not exist.
        await sla.problem(method, concrete, 404, key="operator-key", tenant="nope", json=body)
        await sla.problem(method, concrete, 422, key="globex-key", tenant="globex%00", json=body)
        # A read-only key reads its tenant's configuration but may not change it.
        if method == "GET":
            # Lists answer; acme has no calendar "office" or policy "chat": 404, not 403.
            read = await sla.call(method, concrete, key="acme-readonly-key", tenant="acme")
            assert read.status_code == (404 if "{name}" in relative else 200), read.text
        else:
            problem = await sla.problem(
                method, concrete, 403, key="acme-readonly-key", tenant="acme", json=body
            )
            assert "sla_admin" in problem["detail"]
    # Nothing was written through any refused request.
    assert (
        await raw.fetch(
            "SELECT * FROM sla_calendars UNION ALL SELECT tenant, name, body, created_at FROM sla_policies"
        )
        == stored
    )
    # What acme's key sees of acme is not globex's.
    assert (await sla.ok("GET", "/calendars"))["calendars"] == []
    assert (await sla.ok("GET", "/policies"))["policies"] == []
    await sla.problem("GET", "/policies/chat", 404)


def test_openapi_documents_every_sla_operation(sla_app: FastAPI) -> None:
    doc = sla_app.openapi()
    assert "sla" in [tag["name"] for tag in doc["tags"]]
    schemas = doc["components"]["schemas"]
    for method, path in sla_routes(sla_app):
        operation = doc["paths"][path][method.lower()]
        assert operation["tags"] == ["sla"] and operation["summary"], path
        assert {"401", "403", "404", "422"} <= set(operation["responses"]), (method, path)
        if method != "GET":
            assert "409" in operation["responses"], (method, path)
        body = operation.get("requestBody")
        if body is not None:
            ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            assert schemas[ref].get("examples"), ref
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json")
            if content and status.startswith("2"):
                ref = content["schema"]["$ref"].rsplit("/", 1)[1]
                assert schemas[ref].get("examples"), (path, status, ref)
    assert doc["paths"][f"{BASE}/policies"]["post"]["responses"]["201"]["headers"]["Location"]
