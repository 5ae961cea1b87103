"""NUL characters cannot be stored or compared in Postgres text: a clear 422, never a 5xx."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/kpis", {"channel": "ch\x00at"}),
        ("/v1/kpis", {"label": "\x00"}),
        ("/v1/kpis/timeseries", {"kpi": "first_response_seconds", "agent": "a\x00"}),
        ("/v1/agents", {"team": "x\x00"}),
    ],
)
async def test_nul_in_a_parameter_is_a_422_naming_it(api: Api, path: str, params: dict[str, str]) -> None:
    body = await api.problem(path, 422, **params)
    (name,) = params.keys() - {"kpi"}
    assert body["errors"][0]["field"] == name
    assert "NUL" in body["detail"]


async def test_nul_in_a_path_parameter_is_a_422(api: Api) -> None:
    body = await api.problem("/v1/conversations/c%00x", 422)  # percent-encoded: decoded to NUL
    assert body["errors"][0]["field"] == "conversation_id"
