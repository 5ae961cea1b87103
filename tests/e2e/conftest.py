"""End-to-end fixtures: the real pipeline on the fixed ports Prometheus scrapes, fed by the simulator.

`pipeline` (package scope: stopped after the last test of tests/e2e, not at the end of a whole-suite
session) creates a database and topics of its own, a tenant of its own (so that series,
alerts and Alertmanager notifications of earlier runs cannot satisfy this run), starts ingest,
aggregator and API as child processes on 8081 / 8082 / 8080 and the simulator against them, and stops
everything at the end. Before the aggregator starts, the run's tenant gets SLA policies through the API
(`POST /v1/tenants/{tenant}/sla/policies`) with short first-response, next-reply and resolution targets,
so that breaches of every target happen within the first minutes of traffic.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from services.stack import StackInfo, up
from shared.db.scratch import scratch_database
from shared.kafka import delete_topics
from shared.tenants import DEFAULT_FILE
from tests.e2e.support import (
    RULES_DIR,
    AlertSink,
    Child,
    Pipeline,
    Prometheus,
    alert_names,
    clean_environment,
    port_is_free,
    wait_until_ready,
)

INGEST_PORT, AGGREGATOR_PORT, API_PORT = 8081, 8082, 8080
SINK_PORT = 19095
FIRST_RESPONSE_TARGETS = {"chat": 20, "whatsapp": 20, "email": 60}
# The run tenant's SLA policies (calendar time, effective long before the run). The simulator answers a
# customer's follow-up after 5-90 s and resolves after one to a few minutes, so the next-reply and
# resolution targets are both met and breached; the at-risk share is low so clocks turn at risk early.
SLA_POLICIES: list[dict[str, object]] = [
    {
        "name": "chat",
        "channels": ["chat", "whatsapp"],
        "first_response": {"seconds": FIRST_RESPONSE_TARGETS["chat"]},
        "next_reply": {"seconds": 30},
        "resolution": {"seconds": 120},
        "at_risk_share": 0.5,
    },
    {
        "name": "email",
        "channels": ["email"],
        "first_response": {"seconds": FIRST_RESPONSE_TARGETS["email"]},
        "next_reply": {"seconds": 60},
        "resolution": {"seconds": 300},
        "at_risk_share": 0.5,
    },
]
SLA_EFFECTIVE_FROM = "2000-01-01T00:00:00Z"
SIMULATOR_RATE = 8.0
# Upper bound of the simulator's run if the session's teardown never comes (it is stopped earlier).
SIMULATOR_MAX_SECONDS = 600
READY_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def stack() -> StackInfo:
    """The running local stack with Prometheus and Alertmanager; `up()` is a no-op when CI started it."""
    info = up(with_prometheus=True)
    assert info.prometheus_url and info.alertmanager_url
    return info


@pytest.fixture(scope="session")
def prometheus(stack: StackInfo) -> Iterator[Prometheus]:
    """The stack's Prometheus with the current deploy/prometheus/rules loaded (reloaded if it ran before)."""
    assert stack.prometheus_url is not None
    client = Prometheus(stack.prometheus_url)
    client.reload()
    wanted = alert_names(sorted(RULES_DIR.glob("*.yml")))
    deadline = time.monotonic() + 30
    loaded: set[str] = set()
    while time.monotonic() < deadline:
        loaded = {r["name"] for g in client.rule_groups() for r in g["rules"] if r.get("type") == "alerting"}
        if wanted <= loaded:
            break
        time.sleep(0.5)
    missing = wanted - loaded
    assert not missing, (
        f"Prometheus at {stack.prometheus_url} did not load the alerts {sorted(missing)} of {RULES_DIR} "
        "after /-/reload: is it the stack's Prometheus (deploy/prometheus/prometheus.yml)?"
    )
    yield client
    client.close()


@pytest.fixture(scope="package")
def alert_sink() -> Iterator[AlertSink]:
    """The webhook receiver of deploy/alertmanager/alertmanager.yml (http://127.0.0.1:19095/alerts)."""
    sink = AlertSink(port=SINK_PORT)
    try:
        sink.start()
    except OSError as exc:
        pytest.fail(
            f"cannot listen on 127.0.0.1:{SINK_PORT} for Alertmanager's webhook ({exc}): another process "
            f"holds the port (`ss -ltnp 'sport = :{SINK_PORT}'`); stop it and run again"
        )
    yield sink
    sink.stop()


def _tenants_file(path: Path, tenant: str) -> None:
    """The demo tenant of the development tenants file, under a name of this run's own."""
    source = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    config = dict(source["tenants"]["demo"])
    config["ingest_token"] = f"{tenant}-ingest-token"
    data = {
        "tenants": {tenant: config},
        "api_keys": [
            {
                "name": "e2e",
                "key": f"{tenant}-api-key",
                "tenants": [tenant],
                "metrics": True,
                "sla_admin": True,
            }
        ],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _create_sla_policies(tenant: str, api: Child) -> None:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{API_PORT}",
        headers={"Authorization": f"Bearer {tenant}-api-key"},
        timeout=10.0,
        trust_env=False,
    ) as client:
        for policy in SLA_POLICIES:
            response = client.post(
                f"/v1/tenants/{tenant}/sla/policies", json={**policy, "effective_from": SLA_EFFECTIVE_FROM}
            )
            if response.status_code != 201:
                pytest.fail(
                    f"creating SLA policy {policy['name']!r} answered {response.status_code} "
                    f"{response.text}\n{api.describe()}"
                )


@pytest.fixture(scope="package")
def pipeline(
    stack: StackInfo, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    taken = [p for p in (INGEST_PORT, AGGREGATOR_PORT, API_PORT) if not port_is_free(p)]
    if taken:
        pytest.fail(
            f"port(s) {taken} already in use: the end-to-end tests run ingest, aggregator and API on "
            "8081 / 8082 / 8080, the targets deploy/prometheus/prometheus.yml scrapes. Stop whatever listens "
            f"there (`ss -ltnp` shows it; often a `supportpulse demo` or `supportpulse api`) and run again."
        )
    assert stack.alertmanager_url is not None
    run = uuid.uuid4().hex[:8]
    tenant = f"e2e{run}"
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    tenants_file = log_dir / "tenants.yaml"
    _tenants_file(tenants_file, tenant)

    topics = [f"e2e.{run}.events", f"e2e.{run}.raw", f"e2e.{run}.deadletter"]
    env = clean_environment() | {
        "SUPPORTPULSE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "SUPPORTPULSE_EVENTS_TOPIC": topics[0],
        "SUPPORTPULSE_RAW_TOPIC": topics[1],
        "SUPPORTPULSE_DEADLETTER_TOPIC": topics[2],
        "SUPPORTPULSE_AGGREGATOR_GROUP": f"e2e-aggregator-{run}",
        "SUPPORTPULSE_AGGREGATOR_INSTANCE_ID": f"e2e-{run}-0",
        "SUPPORTPULSE_AGGREGATOR_FIRST_RESPONSE_TARGETS": json.dumps(FIRST_RESPONSE_TARGETS),
        "SUPPORTPULSE_TENANTS_FILE": str(tenants_file),
        "SUPPORTPULSE_INGEST_HOST": "127.0.0.1",
        "SUPPORTPULSE_INGEST_PORT": str(INGEST_PORT),
        "SUPPORTPULSE_AGGREGATOR_METRICS_HOST": "127.0.0.1",
        "SUPPORTPULSE_AGGREGATOR_METRICS_PORT": str(AGGREGATOR_PORT),
        "SUPPORTPULSE_API_HOST": "127.0.0.1",
        "SUPPORTPULSE_API_PORT": str(API_PORT),
        # Prometheus scrapes /metrics without a key; the dashboards read the 1h and 24h windows.
        "SUPPORTPULSE_API_METRICS_PROTECTED": "false",
        "SUPPORTPULSE_API_METRICS_WINDOWS": "5m,1h,24h",
        # The agents dashboard reads the agent label.
        "SUPPORTPULSE_API_METRICS_PER_AGENT": "true",
        "SUPPORTPULSE_LOG_LEVEL": "INFO",
    }

    children: dict[str, Child] = {}
    with asyncio.Runner() as runner:
        cleanup = AsyncExitStack()
        try:
            env["SUPPORTPULSE_DATABASE_URL"] = runner.run(
                cleanup.enter_async_context(
                    scratch_database(stack.database_url, f"supportpulse_e2e_{run}_", migrate=False)
                )
            )
            # The real command: schema (Alembic) and the run's topics.
            migrate = Child("migrate", ["migrate"], log_dir / "migrate.log", env)
            migrate.start()
            assert migrate.proc is not None
            if migrate.proc.wait(timeout=120) != 0:
                pytest.fail(f"`supportpulse migrate` failed\n{migrate.describe()}")
            migrate.stop()

            for name in ("ingest", "api"):
                children[name] = Child(name, [name], log_dir / f"{name}.log", env)
                children[name].start()
            wait_until_ready(
                children,
                {
                    "ingest": f"http://127.0.0.1:{INGEST_PORT}/readyz",
                    "api": f"http://127.0.0.1:{API_PORT}/readyz",
                },
                READY_TIMEOUT,
            )
            # Stored before the aggregator starts, so it judges every conversation by them from the first.
            _create_sla_policies(tenant, children["api"])
            children["aggregator"] = Child("aggregator", ["aggregator"], log_dir / "aggregator.log", env)
            children["aggregator"].start()
            wait_until_ready(
                children, {"aggregator": f"http://127.0.0.1:{AGGREGATOR_PORT}/readyz"}, READY_TIMEOUT
            )
            simulator = Child(
                "simulator",
                [
                    "simulate",
                    *("--rate", str(SIMULATOR_RATE), "--duration", str(SIMULATOR_MAX_SECONDS)),
                    *("--tenant", tenant, "--ingest-url", f"http://127.0.0.1:{INGEST_PORT}"),
                    *("--seed", "20240917"),
                ],
                log_dir / "simulator.log",
                env,
            )
            children["simulator"] = simulator
            simulator.start()
            yield Pipeline(
                tenant=tenant,
                prometheus=prometheus,
                alertmanager_url=stack.alertmanager_url,
                feed_started=time.monotonic(),
                children=children,
                log_dir=log_dir,
            )
        finally:
            # Last started, first stopped: the simulator before the services it sends to.
            for child in reversed(children.values()):
                child.stop()
            runner.run(cleanup.aclose())
            runner.run(delete_topics(stack.kafka_bootstrap, topics))
