"""Bearer API keys, tenant scopes and isolation on every endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.integration

ENDPOINTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/kpis", {}),
    ("/v1/kpis/timeseries", {"kpi": "conversations_created"}),
    ("/v1/agents", {}),
    ("/v1/live", {}),
    ("/v1/conversations/c-story", {}),
]


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
async def test_missing_or_unknown_key(api: Api, path: str, params: dict[str, Any]) -> None:
    for key in (None, "wrong-key", ""):
        response = await api.get(path, key, **params)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"] == "https://supportpulse.dev/problems/unauthorized"
    response = await api.client.get(path, params=params, headers={"Authorization": "Basic YWNtZTprZXk="})
    assert response.status_code == 401


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
async def test_a_key_cannot_read_another_tenant(api: Api, path: str, params: dict[str, Any]) -> None:
    body = await api.problem(path, 403, key="acme-key", tenant="globex", **params)
    assert body["detail"] == "this API key may not read tenant 'globex'"
    await api.problem(path, 403, key="globex-key", tenant="acme", **params)


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
async def test_keys_of_several_tenants_must_name_one(api: Api, path: str, params: dict[str, Any]) -> None:
    body = await api.problem(path, 422, key="both-key", **params)
    assert body["errors"] == [
        {"field": "tenant", "reason": "required: this API key reads more than one tenant"}
    ]
    response = await api.get(path, "both-key", tenant="acme", **params)
    assert response.status_code == 200, response.text


async def test_filters_never_reach_another_tenant(api: Api) -> None:
    """globex has 50 conversations by an agent 'alice' labelled 'vip'; acme's key sees acme's only."""
    k = (await api.ok("/v1/kpis", label="vip", agent="alice"))["groups"][0]["kpis"]
    assert k["conversations_created"] == 1
    groups = (await api.ok("/v1/kpis", group_by="label"))["groups"]
    assert {g["group"]["label"]: g["kpis"]["conversations_created"] for g in groups} == {
        "billing": 1,
        "vip": 2,
    }
    assert (await api.ok("/v1/kpis", key="both-key", tenant="globex", label="vip"))["groups"][0]["kpis"][
        "conversations_created"
    ] == 50
    rows = (await api.ok("/v1/agents", key="globex-key"))["agents"]
    assert [r["agent"] for r in rows] == ["alice"]
    assert rows[0]["first_response_seconds"]["avg"] == 30.0


async def test_problem_details_shape(api: Api) -> None:
    body = await api.problem("/v1/kpis", 403, tenant="globex")
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["title"] == "Forbidden"
    response = await api.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
