"""Schemathesis against the ingest service, in-process, publishing to the real Kafka broker.

The OpenAPI document ingest serves is loaded with ``schemathesis.openapi.from_asgi`` and the
documented contract of docs/events.md is written onto it (tests/fuzz/ingest_contract.py).
Generated requests carry a real ingest token; generated valid events are really published
(to topics of this module, deleted afterwards) and read back from Kafka.

Asserted on every response: no 5xx, only documented status codes, content types, headers
and bodies, the bearer token actually enforced, and problem+json on every error.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.fuzz.conftest import INGEST_TOKEN, OTHER_TOKEN, IngestUnderTest, wait_ready
from tests.fuzz.ingest_contract import PROBLEM_JSON
from tests.fuzz.support import CHECKS, Tally, assert_problem_on_error, fuzz_settings, in_thread, read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS: Final = ("POST", "/v1/events")
WEBHOOK: Final = ("POST", "/v1/webhooks/{connector}/{tenant}")
OPERATIONS: Final = [EVENTS, WEBHOOK, ("GET", "/healthz"), ("GET", "/readyz")]
# Operations with parameters or a body can be negated; the others have nothing to break.
NEGATABLE: Final = [EVENTS, WEBHOOK]
ROUTE_FOR: Final = {"application/json": ("chatwoot", "legacy"), "text/plain": ("asterisk", "t1")}
EXAMPLES: Final = {EVENTS: 200, WEBHOOK: 150, ("GET", "/healthz"): 5, ("GET", "/readyz"): 5}


def _operations(schema: Any) -> list[tuple[str, str]]:
    return sorted((op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations())


def test_every_ingest_route_is_fuzzed(ingest: IngestUnderTest) -> None:
    routes = sorted(
        (method, route.path)
        for route in ingest.app.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    )
    assert routes == sorted(OPERATIONS)
    assert _operations(ingest.served) == sorted(OPERATIONS)
    assert _operations(ingest.contract) == sorted(OPERATIONS)


def test_ingest_openapi_documents_its_contract(ingest: IngestUnderTest) -> None:
    doc = ingest.served.raw_schema
    events = doc["paths"]["/v1/events"]["post"]
    assert "requestBody" in events
    assert events.get("security")
    for status in ("401", "413", "415", "422", "503"):
        assert PROBLEM_JSON in events["responses"][status]["content"], status
    webhook = doc["paths"]["/v1/webhooks/{connector}/{tenant}"]["post"]
    assert "requestBody" in webhook
    for status in ("401", "404", "413", "415", "422", "503"):
        assert PROBLEM_JSON in webhook["responses"][status]["content"], status


def _run(ingest: IngestUnderTest, method: str, path: str, mode: GenerationMode) -> tuple[Tally, set[str]]:
    wait_ready(ingest.contract)
    operation = ingest.contract[path][method]
    tally = Tally()
    accepted: set[str] = set()

    @fuzz_settings(EXAMPLES[(method, path)])
    @given(
        case=operation.as_strategy(generation_mode=mode),
        token=st.sampled_from([INGEST_TOKEN, OTHER_TOKEN]),
        aim=st.booleans(),
    )
    def fuzz(case: Any, token: str, aim: bool) -> None:
        if aim and (method, path) == WEBHOOK and case.media_type in ROUTE_FOR:
            # Half the time, the route that takes this body without a signature the test cannot
            # make: the unsigned Chatwoot tenant, or Asterisk with the bearer token.
            connector, tenant = ROUTE_FOR[case.media_type]
            case.path_parameters = {"connector": connector, "tenant": tenant}
            token = INGEST_TOKEN
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
        assert_problem_on_error(response)
        tally.add(response.status_code)
        if response.status_code == 202:
            accepted.update(response.json()["ids"])

    fuzz()
    return tally, accepted


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_positive(ingest: IngestUnderTest, method: str, path: str) -> None:
    tally, accepted = _run(ingest, method, path, GenerationMode.POSITIVE)
    assert tally.total > 0
    if (method, path) == EVENTS:
        # Most generated events are valid: they were acknowledged, so they must be on Kafka.
        assert tally.statuses[202] >= tally.total // 3, tally
        published = in_thread(
            lambda: read_events(ingest.settings.kafka_bootstrap, ingest.settings.events_topic, accepted)
        )
        assert accepted <= {e.id for e in published}
        assert {e.tenant for e in published} <= {"t1", "t2"}
    if (method, path) == WEBHOOK:
        # The unsigned Chatwoot tenant and the Asterisk token route reach the mappings.
        assert tally.statuses[202] > 0, tally


@pytest.mark.parametrize(("method", "path"), NEGATABLE)
def test_negative(ingest: IngestUnderTest, method: str, path: str) -> None:
    tally, _ = _run(ingest, method, path, GenerationMode.NEGATIVE)
    assert tally.total > 0
    assert sum(n for status, n in tally.statuses.items() if 400 <= status < 500) > 0, tally


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_coverage_phase(ingest: IngestUnderTest, method: str, path: str) -> None:
    """Schemathesis's deterministic boundary cases (coverage phase), positive and negative."""
    wait_ready(ingest.contract)
    schema = ingest.contract
    operation = schema[path][method]
    config = schema.config.generation_for(operation=operation, phase="coverage")
    tally = Tally()
    for case in schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=config
    ):
        response = case.call_and_validate(headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, checks=CHECKS)
        assert_problem_on_error(response)
        tally.add(response.status_code)
    assert tally.total > 0, tally
