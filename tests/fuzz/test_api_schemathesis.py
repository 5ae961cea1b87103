"""Schemathesis against the read API, in-process, on the API tests' seeded and migrated database.

The document the API serves is loaded with ``schemathesis.openapi.from_asgi`` and every
operation is fuzzed as documented (positive and negative generation, plus Schemathesis's
deterministic coverage phase), with real API keys of every kind injected: one tenant, two
tenants, all tenants, all tenants without metrics. /metrics runs protected, as its
``security`` declares.

Asserted on every response: no 5xx, only documented status codes, content types, headers and
bodies, authentication actually enforced (``ignored_auth`` replays without the key), and
problem+json on every error.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from shared.kpis import KPIS
from tests.fuzz.conftest import wait_ready
from tests.fuzz.support import CHECKS, Tally, assert_problem_on_error, fuzz_settings
from tests.security.routes import api_routes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS: Final = ["acme-key", "globex-key", "both-key", "operator-key", "operator-nometrics-key"]
# Values that exist in the seeded database, mixed into the generated parameters.
REAL: Final = {
    "tenant": ["acme", "globex", "initech"],
    "kpi": sorted(KPIS),
    "conversation_id": ["c-story", "c-breach", "c-open-1", "call-1", "g-open-1"],
}
READS: Final = [
    ("GET", "/v1/kpis"),
    ("GET", "/v1/kpis/timeseries"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/live"),
    ("GET", "/v1/conversations/{conversation_id}"),
]
OPERATIONS: Final = [*READS, ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")]
EXAMPLES: Final = 120


def test_every_api_route_is_fuzzed(api_app: FastAPI, api_schema: Any) -> None:
    assert sorted(api_routes(api_app)) == sorted(OPERATIONS)
    documented = sorted((op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations())
    assert documented == sorted(OPERATIONS)


def _fuzz(api_schema: Any, method: str, path: str, mode: GenerationMode, examples: int) -> Tally:
    wait_ready(api_schema)
    operation = api_schema[path][method]
    tally = Tally()

    @fuzz_settings(examples)
    @given(
        case=operation.as_strategy(generation_mode=mode),
        key=st.sampled_from(KEYS),
        real=st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in REAL.items()}),
    )
    def fuzz(case: Any, key: str, real: dict[str, str]) -> None:
        # Real tenants, KPI names and conversations too, not only generated strings: the
        # interesting answers are the 200s.
        for name, value in real.items():
            if operation.query.get(name) is not None:
                case.query = {**(case.query or {}), name: value}
            elif operation.path_parameters.get(name) is not None:
                case.path_parameters = {**(case.path_parameters or {}), name: value}
        response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
        assert_problem_on_error(response)
        tally.add(response.status_code)

    fuzz()
    return tally


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_positive(api_schema: Any, method: str, path: str) -> None:
    tally = _fuzz(
        api_schema, method, path, GenerationMode.POSITIVE, EXAMPLES if (method, path) in READS else 10
    )
    assert tally.statuses[200] > 0, tally


@pytest.mark.parametrize(("method", "path"), READS)
def test_negative(api_schema: Any, method: str, path: str) -> None:
    tally = _fuzz(api_schema, method, path, GenerationMode.NEGATIVE, EXAMPLES)
    assert sum(n for status, n in tally.statuses.items() if 400 <= status < 500) > 0, tally


@pytest.mark.parametrize("key", ["acme-key", "operator-key"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_coverage_phase(api_schema: Any, method: str, path: str, key: str) -> None:
    """Schemathesis's deterministic boundary cases (coverage phase), positive and negative."""
    wait_ready(api_schema)
    operation = api_schema[path][method]
    config = api_schema.config.generation_for(operation=operation, phase="coverage")
    tally = Tally()
    for case in api_schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=config
    ):
        response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
        assert_problem_on_error(response)
        tally.add(response.status_code)
    assert tally.total > 0
