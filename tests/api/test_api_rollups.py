"""The KPI endpoints answer the same from the rollups as from the detail rows.

Each request is made twice: as served (the repository picks the coarsest level that can
answer), then with every query forced onto the detail tables. The seed's values are small
binary fractions, so even the float sums must agree to the last bit.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.api.kpis import repository
from services.api.kpis.cache import ANSWERS
from services.api.kpis.repository import DETAIL, BucketQuery, Source
from tests.api.conftest import Api

pytestmark = pytest.mark.integration

REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/kpis", {"window": "1h"}),
    ("/v1/kpis", {"window": "24h", "group_by": "channel"}),
    ("/v1/kpis", {"window": "24h", "group_by": "channel,label"}),
    ("/v1/kpis", {"window": "7d", "group_by": "label"}),
    ("/v1/kpis", {"window": "24h", "label": "vip", "group_by": "channel"}),
    ("/v1/kpis", {"window": "24h", "group_by": "team"}),
    ("/v1/kpis", {"window": "24h", "group_by": "queue"}),
    ("/v1/kpis", {"window": "24h", "queue": "sales"}),
    ("/v1/kpis", {"window": "24h", "channel": "chat,email", "group_by": "channel"}),
    ("/v1/kpis", {"period": "today", "key": "globex-key", "tenant": "globex"}),
    ("/v1/kpis/timeseries", {"window": "1h", "kpi": "first_response_seconds", "stat": "p90", "step": "5m"}),
    ("/v1/kpis/timeseries", {"window": "24h", "kpi": "conversations_created", "step": "1h"}),
    ("/v1/kpis/timeseries", {"window": "7d", "kpi": "abandonment_rate", "step": "1d", "queue": "sales"}),
    ("/v1/agents", {"window": "24h"}),
]


@pytest.mark.parametrize(("path", "params"), REQUESTS)
async def test_rollups_and_detail_rows_give_the_same_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch, path: str, params: dict[str, Any]
) -> None:
    params = dict(params)
    key = params.pop("key", "acme-key")
    served = await api.ok(path, key, **params)
    read: list[str] = []
    chosen = repository.source_for

    def detail(q: BucketQuery) -> Source:
        read.append(chosen(q).name)
        return DETAIL

    monkeypatch.setattr(repository, "source_for", detail)
    ANSWERS.clear()  # or the second request is answered from the first one's result
    assert await api.ok(path, key, **params) == served
    assert read, "the repository was not asked which level to read"
    if path != "/v1/agents":
        # The point of the rollups: only the leaderboard needs the agent.
        assert "detail" not in read, read
