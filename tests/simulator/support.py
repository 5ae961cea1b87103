"""Helpers: play a story's deliveries through the real ingest connectors, without HTTP."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from services.ingest.connectors import CONNECTORS
from services.ingest.connectors.base import Mapped, WebhookRequest
from services.simulator.model import DEFAULT_MIX, Mix, Scenario
from services.simulator.story import Delivery, Story
from services.simulator.wire import Credentials, Prepared, prepare
from shared.tenants import DEFAULT_FILE, load_tenants

TENANT = "demo"
BASE_URL = "http://127.0.0.1:8081"
# 2025-01-15 11:20 UTC: any fixed instant works; every request is received at its send time.
ORIGIN = 1736940000.0
RUN_ID = 1736940000

TENANTS = load_tenants(DEFAULT_FILE)
CREDS = Credentials.from_tenants(TENANTS, TENANT)


def connector_configs(tenant: str = TENANT) -> dict[str, BaseModel]:
    """Each connector's config validated from the tenants file, as the ingest service does."""
    sections = TENANTS.tenants[tenant].connectors
    return {name: CONNECTORS[name][1].model_validate(section) for name, section in sections.items()}


CONFIGS = connector_configs()


def scenario(seed: int = 7, mix: Mix = DEFAULT_MIX, run_id: int = RUN_ID) -> Scenario:
    return Scenario(seed, run_id=run_id, mix=mix, connectors=CREDS.connectors)


def request_for(prepared: Prepared, at: float, tenant: str = TENANT) -> WebhookRequest:
    headers = {k.lower(): v for k, v in prepared.headers_at(at).items()}
    return WebhookRequest(tenant, prepared.body, headers, prepared.url, datetime.fromtimestamp(at, UTC))


@dataclass(frozen=True, slots=True)
class Handled:
    story: Story
    delivery: Delivery
    prepared: Prepared
    mapped: Mapped
    origin: float


def handle(delivery: Delivery, origin: float = ORIGIN) -> tuple[Prepared, Mapped]:
    prepared = prepare(delivery, origin, BASE_URL, CREDS)
    connector = CONNECTORS[delivery.connector][0]
    return prepared, connector.handle(
        request_for(prepared, origin + delivery.offset), CONFIGS[delivery.connector]
    )


def handle_all(stories: Iterable[Story], origin: float = ORIGIN, spacing: float = 0.2) -> list[Handled]:
    """Stories starting ``spacing`` seconds apart, as the runner's arrivals would (5 per second)."""
    out = []
    for i, story in enumerate(stories):
        start = origin + i * spacing
        for delivery in story.deliveries:
            prepared, mapped = handle(delivery, start)
            out.append(Handled(story, delivery, prepared, mapped, start))
    return out
