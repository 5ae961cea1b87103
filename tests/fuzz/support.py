"""Helpers for the fuzz tests: response checks, and reading back what ingest published."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.events import Event, decode

T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"

# Schemathesis checks run on every response: no 5xx, only documented status codes, content
# types and headers, bodies matching the documented schema, and auth actually enforced.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


def fuzz_settings(max_examples: int) -> settings:
    """Bounded, derandomized (same examples on every run and in CI), no deadline (real I/O)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        # Real I/O per example; generation of nested bodies may be filtered a lot.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


def assert_problem_on_error(response: Any) -> None:
    """Every error is RFC 9457 problem details whose status matches the response's."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", "")
    if isinstance(content_type, list):  # schemathesis' Response keeps header values as lists
        content_type = content_type[0] if content_type else ""
    assert content_type == PROBLEM_JSON, (response.status_code, content_type, response.text[:300])
    body = response.json()
    assert body["status"] == response.status_code, body
    assert isinstance(body["detail"], str) and body["detail"].strip(), body
    assert body["type"].startswith("https://supportpulse.dev/problems/"), body


def in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a loop of its own, in a thread (from a sync test)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="fuzz-kafka-reader")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def read_events(bootstrap: str, topic: str, want: set[str], within: float = 30.0) -> list[Event]:
    """Events of ``topic`` from the start, until every id in ``want`` was seen (or ``within`` s)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Event] = []
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + within
        while not want <= seen and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    event = decode(record.value)
                    found.append(event)
                    seen.add(event.id)
    finally:
        await consumer.stop()
    return found


class Tally:
    """Status codes seen by a fuzz run, to show what it exercised and to assert it reached 2xx."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()

    def add(self, status: int) -> None:
        self.statuses[status] += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def __repr__(self) -> str:
        return f"Tally({dict(sorted(self.statuses.items()))})"
