"""The apps the fuzz tests drive: ingest on the real broker, the API on a seeded real database.

Both are loaded with ``schemathesis.openapi.from_asgi`` and called in-process through
Schemathesis's ASGI transport, which runs each app (and its lifespan: the Kafka producer,
the metrics refresher) on one event loop thread of its own. Schemathesis's pytest plugin ends
those lifespans when each test ends, before the fixtures below are torn down; the next call
starts them again, so every test waits for readiness first (:func:`wait_ready`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.api.app import create_app as create_api
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from shared.kafka import delete_topics
from shared.settings import CommonSettings
from shared.tenants import TenantsConfig
from tests.api.conftest import TENANTS as API_TENANTS
from tests.api.conftest import api_database, api_settings, seeded
from tests.api.seed import NOW
from tests.fuzz.ingest_contract import with_contract

__all__ = ["api_database", "seeded"]  # the API tests' seeded database, built for this directory too

INGEST_TOKEN = "fuzz-t1-token"
OTHER_TOKEN = "fuzz-t2-token"
INGEST_TENANTS = TenantsConfig.model_validate(
    {
        "tenants": {
            "t1": {
                "ingest_token": INGEST_TOKEN,
                "connectors": {
                    "generic": {},
                    "chatwoot": {"secret": "fuzz-chatwoot-secret"},
                    "twilio": {"auth_token": "fuzz-twilio-token"},
                    "asterisk": {},
                },
            },
            # An install that does not sign: bodies reach the mapping without a signature.
            "legacy": {"connectors": {"chatwoot": {"unsigned": True}}},
            "t2": {"ingest_token": OTHER_TOKEN, "connectors": {"generic": {}}},
        }
    }
)
MAX_BODY = 64 * 1024

# Generation settings shared by both apps: no undeclared query parameters (FastAPI ignores
# them by design) and no generated Authorization headers (the tests inject real keys).
CONFIG = {"generation": {"allow-extra-parameters": False, "with-security-parameters": False}}


def schema_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(CONFIG)


def wait_ready(schema: Any, *, within: float = 30.0) -> None:
    """Call GET /readyz until it answers 200 (this also starts the app's lifespan)."""
    case = schema["/readyz"]["GET"].Case()
    deadline = time.monotonic() + within
    while True:
        response = case.call()
        if response.status_code == 200:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz still answers {response.status_code}: {response.text[:200]}")
        time.sleep(0.1)


@dataclass(frozen=True)
class IngestUnderTest:
    app: FastAPI
    settings: IngestSettings
    served: Any  # the document ingest serves, as loaded by from_asgi
    contract: Any  # the same document with docs/events.md's bodies and answers added

    @property
    def topics(self) -> list[str]:
        return [self.settings.events_topic, self.settings.raw_topic, self.settings.deadletter_topic]


def _end_lifespans() -> None:
    # Normally done by Schemathesis's pytest plugin at each test's teardown; repeated here so
    # no producer outlives its topics when the plugin is disabled (-p no:schemathesis).
    shutdown = getattr(schemathesis.python.asgi, "shutdown_lifespans", None)
    if shutdown is not None:
        shutdown()


@pytest.fixture(scope="module")
async def ingest(base_settings: CommonSettings) -> AsyncIterator[IngestUnderTest]:
    run = uuid.uuid4().hex[:10]
    settings = IngestSettings(
        events_topic=f"test.fuzz.{run}.events",
        raw_topic=f"test.fuzz.{run}.raw",
        deadletter_topic=f"test.fuzz.{run}.dlq",
        events_partitions=2,
        ingest_max_body_bytes=MAX_BODY,
    )
    app = create_ingest(settings, INGEST_TENANTS, CollectorRegistry())
    served = schemathesis.openapi.from_asgi("/openapi.json", app, config=schema_config())
    contract = schemathesis.openapi.from_dict(with_contract(served.raw_schema), config=schema_config())
    contract.app = app  # what from_asgi does: calls go to the app in-process
    # from_asgi started the lifespan; let the producer connect before any test can end it
    # (Publisher._connect cancelled mid-connect leaks an unclosed AIOKafkaProducer).
    wait_ready(served)
    try:
        yield IngestUnderTest(app, settings, served, contract)
    finally:
        _end_lifespans()
        await delete_topics(
            settings.kafka_bootstrap, [settings.events_topic, settings.raw_topic, settings.deadletter_topic]
        )


@pytest.fixture(scope="module")
def api_app(seeded: str) -> Iterator[FastAPI]:
    # Protected metrics: the deployment the OpenAPI describes (/metrics declares bearer security).
    yield create_api(api_settings(seeded, api_metrics_protected=True), API_TENANTS, clock=lambda: NOW)
    _end_lifespans()


@pytest.fixture(scope="module")
def api_schema(api_app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", api_app, config=schema_config())
