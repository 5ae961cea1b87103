"""Shared helpers for the connector tests: requests, corpus files and event checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from services.ingest.connectors.base import Mapped, WebhookRequest
from shared.events import problems

# Fixed "now" for every request, so range checks and staleness are deterministic.
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
CORPUS = Path(__file__).parent / "corpus"


def corpus_json(vendor: str, name: str) -> Any:
    return json.loads((CORPUS / vendor / name).read_text())


def corpus_bytes(vendor: str, name: str) -> bytes:
    return (CORPUS / vendor / name).read_bytes()


def make_request(
    body: bytes,
    *,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
    url: str = "https://ingest.example.com/v1/webhooks/test/t1",
    tenant: str = "t1",
    received_at: datetime = NOW,
) -> WebhookRequest:
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    if content_type is not None:
        all_headers["content-type"] = content_type
    return WebhookRequest(tenant=tenant, body=body, headers=all_headers, url=url, received_at=received_at)


def assert_usable(mapped: Mapped, *, tenant: str = "t1", prefix: str) -> None:
    """Every event is valid for the aggregator, belongs to the tenant and carries our id prefix."""
    for event in mapped.events:
        assert problems(event) == []
        assert event.tenant == tenant
        assert event.id.startswith(f"{prefix}:")
        assert event.occurred_at.utcoffset() is not None
        assert event.occurred_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert len({e.id for e in mapped.events}) == len(mapped.events)
    for reason in mapped.ignored:
        assert 0 < len(reason) <= 60


# Arbitrary JSON, for "any malformed field is a clean 4xx, never a crash" properties.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def json_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into a decoded JSON value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += json_paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += json_paths(inner, (*prefix, index))
    return found


def replaced(value: Any, path: tuple[str | int, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copied
