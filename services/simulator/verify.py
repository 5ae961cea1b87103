"""Compare a canonical-mode recording's reference with what the aggregator wrote to Postgres.

``supportpulse verify RECORDING`` (or :func:`verify`): the reference (``reference.py``) of
the events the recording says ingest accepted, against the day rows (``grain = 2``, label
``''``) of ``kpi_counts`` and ``kpi_hist`` for the recording's tenant and days. Counts must
be equal; sums equal to within float rounding (the aggregator subtracts float epoch
seconds, about 0.2 µs apart from the exact microsecond differences used here, hence
1 µs per value); the p50, p90 and p99 of every duration read from the histograms within
the histogram's relative error (1 %) of the exact quantiles of the raw values.

Read-only: one ``READ ONLY`` transaction of SELECTs. Rows of other traffic for the same
tenant and days count as differences, so verify a run against its own tenant or database.
The thresholds are the aggregator's (``SUPPORTPULSE_AGGREGATOR_*``), read here by name so
this module imports nothing of the aggregator.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.simulator.record import load_events, load_run
from services.simulator.reference import (
    DEFAULT_FIRST_RESPONSE_TARGETS,
    DayKey,
    Reference,
    Thresholds,
    compute,
)
from shared.db import driver_dsn
from shared.events import Event
from shared.histogram import MIN_VALUE, RELATIVE_ERROR, quantile
from shared.kpis import DURATION_MEASURES

GRAIN_DAY = 2
QUANTILES = (0.5, 0.9, 0.99)
PER_VALUE_ROUNDING = 1e-6
# A deadline is judged by the aggregator's timer (every 5 s by default) and written by the
# next flush: the reference judges clocks this long before the wall clock.
SETTLE = timedelta(seconds=10)


class ThresholdSettings(BaseSettings):
    """The aggregator's thresholds, from the same environment variables (docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="SUPPORTPULSE_AGGREGATOR_", frozen=True, extra="ignore")

    short_abandon_seconds: float = 5.0
    service_level_seconds: float = 20.0
    first_response_targets: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE_TARGETS)
    )
    late_limit_days: float = 90.0

    def thresholds(self) -> Thresholds:
        return Thresholds(
            short_abandon_seconds=self.short_abandon_seconds,
            service_level_seconds=self.service_level_seconds,
            first_response_targets=dict(self.first_response_targets),
            late_limit_days=self.late_limit_days,
        )


@dataclass(frozen=True, slots=True)
class Difference:
    measure: str
    day: date
    channel: str
    want: tuple[int, float]
    got: tuple[int, float]


@dataclass(frozen=True, slots=True)
class QuantileCheck:
    measure: str
    q: float
    exact: float
    stored: float | None

    @property
    def ok(self) -> bool:
        if self.stored is None:
            return False
        # Values at or under a millisecond share one bucket (shared/histogram.py).
        return abs(self.stored - self.exact) <= RELATIVE_ERROR * self.exact + MIN_VALUE + 1e-9


@dataclass(slots=True)
class Comparison:
    reference: Reference
    rows: int = 0  # (measure, day, channel) keys compared
    differences: list[Difference] = field(default_factory=list)
    quantiles: list[QuantileCheck] = field(default_factory=list)
    # Measures whose histogram holds another number of values than the reference.
    histogram_counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.differences and not self.histogram_counts and all(q.ok for q in self.quantiles)

    def summary(self) -> str:
        ref = self.reference
        lines = [
            f"reference: {ref.events} events ({ref.duplicates} duplicates, {ref.skipped} without KPIs, "
            f"{ref.quarantined} out of range), {len(ref.observations)} observations",
            f"compared {self.rows} (measure, day, channel) rows and {len(self.quantiles)} quantiles: "
            + ("all equal" if self.ok else "DIFFERENCES"),
        ]
        for d in self.differences[:50]:
            lines.append(f"  {d.measure} {d.day} {d.channel}: reference {d.want}, postgres {d.got}")
        for measure, (want, got) in sorted(self.histogram_counts.items()):
            lines.append(f"  {measure} histogram: reference {want} values, postgres {got}")
        for q in self.quantiles:
            if not q.ok:
                lines.append(f"  {q.measure} p{q.q * 100:g}: exact {q.exact:.3f}, postgres {q.stored}")
        if ref.pending_deadlines:
            lines.append(
                f"note: {len(ref.pending_deadlines)} SLA clocks still running; breaches may follow "
                f"until {max(ref.pending_deadlines).isoformat()}"
            )
        return "\n".join(lines)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def stored(
    conn: asyncpg.Connection, tenant: str, days: Iterable[date]
) -> tuple[dict[DayKey, tuple[int, float]], dict[str, dict[int, int]]]:
    """Day rows (label '') of ``tenant`` on ``days``: totals per key, histograms per measure."""
    buckets = sorted(_day_start(d) for d in set(days))
    totals: dict[DayKey, tuple[int, float]] = {}
    hists: dict[str, dict[int, int]] = defaultdict(dict)
    async with conn.transaction(readonly=True):
        rows = await conn.fetch(
            "SELECT metric, bucket, channel, sum(count)::bigint AS c, sum(sum) AS s FROM kpi_counts "
            "WHERE tenant = $1 AND grain = $2 AND label = '' AND bucket = ANY($3::timestamptz[]) "
            "GROUP BY metric, bucket, channel",
            tenant,
            GRAIN_DAY,
            buckets,
        )
        for r in rows:
            if r["c"] or r["s"]:
                day = r["bucket"].astimezone(UTC).date()
                totals[(r["metric"], day, r["channel"])] = (int(r["c"]), float(r["s"]))
        for r in await conn.fetch(
            "SELECT metric, idx, sum(count)::bigint AS c FROM kpi_hist "
            "WHERE tenant = $1 AND grain = $2 AND label = '' AND bucket = ANY($3::timestamptz[]) "
            "GROUP BY metric, idx",
            tenant,
            GRAIN_DAY,
            buckets,
        ):
            if r["c"]:
                hists[r["metric"]][int(r["idx"])] = int(r["c"])
    return totals, dict(hists)


def compare(
    ref: Reference, totals: dict[DayKey, tuple[int, float]], hists: dict[str, dict[int, int]]
) -> Comparison:
    want = ref.day_totals()
    result = Comparison(ref, rows=len(set(want) | set(totals)))
    for key in sorted(set(want) | set(totals)):
        w, g = want.get(key, (0, 0.0)), totals.get(key, (0, 0.0))
        if w[0] != g[0] or not math.isclose(
            w[1], g[1], rel_tol=1e-9, abs_tol=PER_VALUE_ROUNDING * max(w[0], 1)
        ):
            result.differences.append(Difference(*key, want=w, got=g))
    for measure in sorted(DURATION_MEASURES):
        values = ref.values(measure)
        counts = hists.get(measure, {})
        if len(values) != sum(counts.values()):
            result.histogram_counts[measure] = (len(values), sum(counts.values()))
        if not values:
            continue
        for q in QUANTILES:
            exact = values[math.floor(q * (len(values) - 1))]  # the rank shared.histogram uses
            result.quantiles.append(QuantileCheck(measure, q, exact, quantile(counts, q)))
    return result


async def verify(
    events: Sequence[Event],
    database_url: str,
    tenant: str,
    *,
    now: datetime | None = None,
    thresholds: Thresholds | None = None,
    wait: float = 0.0,
) -> Comparison:
    """Compare ``events``' reference with Postgres; with ``wait``, poll until equal or that long.

    ``now`` decides the SLA clocks; by default the wall clock less :data:`SETTLE`, taken
    again on every poll.
    """
    deadline = time.monotonic() + wait
    conn = await asyncpg.connect(driver_dsn(database_url))
    try:
        while True:
            ref = compute(events, now=now or datetime.now(UTC) - SETTLE, thresholds=thresholds)
            days = {o.at.astimezone(UTC).date() for o in ref.observations}
            result = compare(ref, *await stored(conn, tenant, days))
            if result.ok or time.monotonic() >= deadline:
                return result
            await asyncio.sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))
    finally:
        await conn.close()


def run(recording: Path, database_url: str, tenant: str | None = None, wait: float = 0.0) -> Comparison:
    """The CLI's work: load, compare, return (``supportpulse verify``)."""
    events = load_events(recording)
    tenant = tenant or load_run(recording).get("tenant") or (events[0].tenant if events else "demo")
    thresholds = ThresholdSettings().thresholds()
    return asyncio.run(verify(events, database_url, tenant, thresholds=thresholds, wait=wait))
