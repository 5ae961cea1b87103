"""The real stack: everything healthy, `up` idempotent, services configured as the app expects."""

from __future__ import annotations

import logging
import os

import asyncpg
import httpx
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from services.stack import StackInfo, process, status, up
from services.stack.cli import app
from services.stack.paths import DEPLOY_DIR, StackPaths
from shared.db import driver_dsn

pytestmark = pytest.mark.integration

COMPONENTS = ["kafka", "postgres", "prometheus", "alertmanager"]


def test_up_returns_the_fixed_addresses(stack: StackInfo) -> None:
    assert stack.kafka_bootstrap == "127.0.0.1:19092"
    assert stack.prometheus_url == "http://127.0.0.1:19090"
    assert stack.alertmanager_url == "http://127.0.0.1:19094"
    if "SUPPORTPULSE_DATABASE_URL" not in os.environ:
        assert (
            stack.database_url
            == "postgresql+asyncpg://supportpulse:supportpulse@127.0.0.1:15432/supportpulse"
        )


def test_status_reports_every_component_healthy(stack: StackInfo) -> None:
    statuses = {s.name: s for s in status()}

    assert list(statuses) == COMPONENTS
    for name, item in statuses.items():
        assert item.healthy, f"{name}: {item.detail}"
        if item.state == "external":
            continue
        assert item.state == "running"
        assert item.pid is not None
        assert process.is_alive(item.pid)
        assert item.log_file is not None
        assert item.log_file.exists()
    assert statuses["kafka"].address == "127.0.0.1:19092"
    assert statuses["prometheus"].address == "127.0.0.1:19090"
    assert statuses["alertmanager"].address == "127.0.0.1:19094"


def test_up_twice_is_a_noop(stack: StackInfo, caplog: pytest.LogCaptureFixture) -> None:
    before = {s.name: s.pid for s in status()}

    with caplog.at_level(logging.INFO, logger="supportpulse.stack"):
        first = up()
        second = up()

    assert first == second == stack
    assert {s.name: s.pid for s in status()} == before
    messages = [record.getMessage() for record in caplog.records]
    for name in ("kafka", "prometheus", "alertmanager"):
        assert f"{name} already running (pid {before[name]})" in messages
    assert not [m for m in messages if m.startswith("starting ")]
    assert messages.count("stack already running (nothing to do)") == 2


def test_env_file_exports_connection_settings(stack: StackInfo) -> None:
    env = StackPaths.from_env().env_file.read_text()

    assert f"export SUPPORTPULSE_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}\n" in env
    assert f"export SUPPORTPULSE_DATABASE_URL={stack.database_url}\n" in env


async def test_kafka_broker_is_configured_for_a_single_node(stack: StackInfo) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        wanted = ["num.partitions", "auto.create.topics.enable", "offsets.topic.replication.factor"]
        resource = ConfigResource(ConfigResourceType.BROKER, "1", configs=dict.fromkeys(wanted))
        (response,) = await admin.describe_configs([resource])
    finally:
        await admin.close()

    assert [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, "127.0.0.1", 19092)]
    assert cluster["controller_id"] == 1
    entries = response.to_object()["resources"][0]["config_entries"]
    configs = {entry["config_names"]: entry["config_value"] for entry in entries}
    assert configs == {
        "num.partitions": "6",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
    }


async def test_postgres_accepts_the_app_user_over_tcp(stack: StackInfo) -> None:
    conn = await asyncpg.connect(driver_dsn(stack.database_url), timeout=10)
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS usr, current_database() AS db, r.rolcreatedb AS createdb "
            "FROM pg_roles r WHERE r.rolname = current_user"
        )
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("max_connections", "shared_buffers", "fsync", "listen_addresses")
        }
    finally:
        await conn.close()

    assert row is not None
    assert (row["usr"], row["db"], row["createdb"]) == ("supportpulse", "supportpulse", True)
    if "SUPPORTPULSE_DATABASE_URL" not in os.environ:
        assert settings == {
            "max_connections": "200",
            "shared_buffers": "256MB",
            "fsync": "on",
            "listen_addresses": "127.0.0.1",
        }


async def test_postgres_rejects_a_wrong_password(stack: StackInfo) -> None:
    if "SUPPORTPULSE_DATABASE_URL" in os.environ:
        pytest.skip("external database")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect("postgresql://supportpulse:wrong@127.0.0.1:15432/supportpulse", timeout=10)


def test_prometheus_loaded_our_rules_and_alertmanager(stack: StackInfo) -> None:
    assert stack.prometheus_url is not None
    with httpx.Client(base_url=stack.prometheus_url, trust_env=False, timeout=10) as client:
        rules = client.get("/api/v1/rules").raise_for_status().json()["data"]["groups"]
        alertmanagers = client.get("/api/v1/alertmanagers").raise_for_status().json()["data"]
        targets = client.get("/api/v1/targets").raise_for_status().json()["data"]["activeTargets"]

    shipped = sorted(
        rule["alert"]
        for path in (DEPLOY_DIR / "prometheus" / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    )
    assert sorted(r["name"] for g in rules for r in g["rules"]) == shipped
    assert "SupportPulseTargetDown" in shipped
    assert [a["url"] for a in alertmanagers["activeAlertmanagers"]] == [
        "http://127.0.0.1:19094/api/v2/alerts"
    ]
    assert sorted(t["labels"]["job"] for t in targets) == [
        "supportpulse-aggregator",
        "supportpulse-api",
        "supportpulse-ingest",
    ]


def test_alertmanager_has_the_webhook_receiver(stack: StackInfo) -> None:
    assert stack.alertmanager_url is not None
    with httpx.Client(base_url=stack.alertmanager_url, trust_env=False, timeout=10) as client:
        receivers = client.get("/api/v2/receivers").raise_for_status().json()
        cluster = client.get("/api/v2/status").raise_for_status().json()["cluster"]

    assert [r["name"] for r in receivers] == ["supportpulse-webhook"]
    assert cluster["status"] == "disabled"


def test_cli_status_exits_zero_and_lists_components(stack: StackInfo) -> None:
    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.split()}
    for name in COMPONENTS:
        assert name in rows, result.output
        assert "yes" in rows[name], rows[name]


def test_cli_logs_prints_the_log_path(stack: StackInfo) -> None:
    # Alertmanager's log is quiet once started, so its last line is stable while the command runs.
    log_file = StackPaths.from_env().log_file("alertmanager")
    last_line = log_file.read_text().splitlines()[-1]

    result = CliRunner().invoke(app, ["logs", "alertmanager", "-n", "3"])

    assert result.exit_code == 0, result.output
    assert str(log_file) in result.output
    assert last_line in result.output


async def test_up_works_from_inside_a_running_event_loop(stack: StackInfo) -> None:
    """Async callers (the app's own integration tests) may call the sync `up()` from a coroutine."""
    assert up() == stack
