"""SIGKILL the real aggregator process at random moments, flushes included: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid

import asyncpg
import httpx
import pytest

from shared.settings import CommonSettings
from tests.aggregator.kafka_helpers import day_totals, produce, stored_offsets, wait_for
from tests.aggregator.test_consumer import expected_totals, same
from tests.factories import random_timelines

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = int(os.environ.get("SUPPORTPULSE_TEST_KILLS", "5"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(env: dict[str, str], log: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.aggregator"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def test_sigkill_during_processing_and_flushes_loses_and_doubles_nothing(
    db: asyncpg.Connection,
    topic: str,
    migrated_database: str,
    base_settings: CommonSettings,
    tmp_path: object,
) -> None:
    rnd = random.Random(42)
    events = [e for t in random_timelines(rnd, 2000) for e in t.events]
    want = expected_totals(events)
    await produce(base_settings.kafka_bootstrap, topic, events)
    group = f"kill-{uuid.uuid4().hex[:8]}"
    env = os.environ | {
        "SUPPORTPULSE_DATABASE_URL": migrated_database,
        "SUPPORTPULSE_EVENTS_TOPIC": topic,
        "SUPPORTPULSE_AGGREGATOR_GROUP": group,
        "SUPPORTPULSE_AGGREGATOR_INSTANCE_ID": "killed",
        "SUPPORTPULSE_AGGREGATOR_METRICS_PORT": str(_free_port()),
        # Flush constantly, so that kills land inside flush transactions too.
        "SUPPORTPULSE_AGGREGATOR_FLUSH_INTERVAL_SECONDS": "0.05",
        "SUPPORTPULSE_AGGREGATOR_MAX_BATCH": "300",
        "SUPPORTPULSE_AGGREGATOR_TIMER_INTERVAL_SECONDS": "0.3",
        "SUPPORTPULSE_AGGREGATOR_FIRST_RESPONSE_TARGETS": json.dumps({"chat": 300.0, "email": 3600.0}),
    }
    log_path = f"{tmp_path}/aggregator.log"
    kills = 0
    progress: list[int] = []
    with open(log_path, "ab") as log:
        while kills < KILLS:
            proc = _start(env, log)
            before = await stored_offsets(db, group)
            # Kill only once this life has made progress, so every kill interrupts real work.
            deadline = time.monotonic() + 60
            while await stored_offsets(db, group) <= before and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(rnd.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            progress.append(await stored_offsets(db, group))
            if progress[-1] >= len(events):
                break
        proc = _start(env, log)
        try:

            async def finished() -> bool:
                assert proc.poll() is None, open(log_path).read()[-3000:]
                return await stored_offsets(db, group) >= len(events) and same(await day_totals(db), want)

            await wait_for(finished, within=120)
            metrics = f"http://127.0.0.1:{env['SUPPORTPULSE_AGGREGATOR_METRICS_PORT']}"
            async with httpx.AsyncClient(base_url=metrics) as client:

                async def ready() -> bool:
                    try:
                        return (await client.get("/readyz")).status_code == 200
                    except httpx.ConnectError:
                        return False  # the last life may still be starting

                await wait_for(ready, within=30)
                assert (await client.get("/healthz")).status_code == 200
                assert "supportpulse_aggregator_events_total" in (await client.get("/metrics")).text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert kills >= min(KILLS, 1)
    assert progress[0] < len(events)  # at least the first kill interrupted unfinished work
    assert progress == sorted(progress)  # progress kept across kills
    assert same(await day_totals(db), want)
    assert same(await day_totals(db, grain=1), want)
