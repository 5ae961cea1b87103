"""Schemathesis against the read API, in-process, on the API tests' seeded and migrated database.

The document the API serves is loaded with ``schemathesis.openapi.from_asgi`` and every
operation is fuzzed as documented (positive and negative generation, plus Schemathesis's
deterministic coverage phase), with real API keys of every kind injected: one tenant, two
tenants, all tenants, all tenants without metrics. /metrics runs protected, as its
``security`` declares.

The SLA configuration routes write: two calendars and two policies per tenant are stored first
(their names are among the real values), and the generated writes land in the same database.

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

from shared.db import make_engine
from shared.kpis import KPIS
from shared.sla import store
from shared.sla.calendar import Calendar
from tests.api.seed import NOW
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
    "name": ["office", "spare", "email", "default"],
}
READS: Final = [
    ("GET", "/v1/kpis"),
    ("GET", "/v1/kpis/timeseries"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/live"),
    ("GET", "/v1/conversations/{conversation_id}"),
    ("GET", "/v1/tenants/{tenant}/sla/calendars"),
    ("GET", "/v1/tenants/{tenant}/sla/calendars/{name}"),
    ("GET", "/v1/tenants/{tenant}/sla/policies"),
    ("GET", "/v1/tenants/{tenant}/sla/policies/{name}"),
]
# Every string is a valid tenant (and the route has no other parameter): no negative case exists.
NEGATIVE: Final = [read for read in READS if read != ("GET", "/v1/tenants/{tenant}/sla/calendars")]
WRITES: Final = [
    ("POST", "/v1/tenants/{tenant}/sla/calendars"),
    ("PUT", "/v1/tenants/{tenant}/sla/calendars/{name}"),
    ("DELETE", "/v1/tenants/{tenant}/sla/calendars/{name}"),
    ("POST", "/v1/tenants/{tenant}/sla/policies"),
    ("PUT", "/v1/tenants/{tenant}/sla/policies/{name}"),
    ("DELETE", "/v1/tenants/{tenant}/sla/policies/{name}"),
]
OPERATIONS: Final = [*READS, *WRITES, ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")]
EXAMPLES: Final = 120
WRITE_EXAMPLES: Final = 40


@pytest.fixture(scope="module", autouse=True)
async def sla_config(seeded: str) -> None:
    """acme's and globex's SLA configuration: calendars office and spare (unused, so it can be
    deleted), policies email (on office) and default."""
    office = Calendar.model_validate(
        {
            "name": "office",
            "timezone": "Europe/Paris",
            "week": {"mon": ["09:00-18:00"], "fri": ["09:00-17:00"]},
        }
    )
    engine = make_engine(seeded, pool_size=1)
    try:
        for tenant in ("acme", "globex"):
            async with engine.begin() as conn:
                await store.put_calendar(conn, tenant, office)
                await store.put_calendar(conn, tenant, office.model_copy(update={"name": "spare"}))
                await store.create_policy(
                    conn, tenant, "default", {"first_response": {"seconds": 3600}}, now=NOW
                )
                email = {
                    "channels": ["email"],
                    "first_response": {"seconds": 14400, "clock": "business", "calendar": "office"},
                }
                await store.create_policy(conn, tenant, "email", email, now=NOW)
    finally:
        await engine.dispose()


def test_every_api_route_is_fuzzed(api_app: FastAPI, api_schema: Any) -> None:
    assert sorted(api_routes(api_app)) == sorted(OPERATIONS)
    documented = sorted((op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations())
    assert documented == sorted(OPERATIONS)


def _fuzz(
    api_schema: Any, method: str, path: str, mode: GenerationMode, examples: int, always: tuple[str, ...] = ()
) -> Tally:
    """``always``: the REAL values always injected (the others: sometimes)."""
    wait_ready(api_schema)
    operation = api_schema[path][method]
    tally = Tally()
    sampled = {k: st.sampled_from(v) for k, v in REAL.items()}

    @fuzz_settings(examples)
    @given(
        case=operation.as_strategy(generation_mode=mode),
        key=st.sampled_from(KEYS),
        real=st.fixed_dictionaries(
            {k: s for k, s in sampled.items() if k in always},
            optional={k: s for k, s in sampled.items() if k not in always},
        ),
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
    if (method, path) in WRITES:
        # Writes get an existing tenant and name every time, so most examples test the body.
        tally = _fuzz(api_schema, method, path, GenerationMode.POSITIVE, WRITE_EXAMPLES, ("tenant", "name"))
        # Random calendars and policies are mostly refused by the domain's rules (a week with
        # no open period, a default before the default, ...): bodies that match the schema and
        # are refused (422) or conflict (409) reached the SLA code as surely as a 2xx did.
        handled = [status for status in tally.statuses if 200 <= status < 300 or status in (409, 422)]
        assert handled, tally
        return
    tally = _fuzz(
        api_schema, method, path, GenerationMode.POSITIVE, EXAMPLES if (method, path) in READS else 10
    )
    assert tally.statuses[200] > 0, tally


@pytest.mark.parametrize(("method", "path"), NEGATIVE)
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
