"""KPI gauges for Prometheus, read from Postgres by a background task, served from memory.

A scrape never touches the database: :meth:`KpiExporter.collect` yields the families
built by the last :meth:`KpiExporter.refresh`, which the lifespan task runs every
``api_metrics_cache_seconds``. Names come from the registry (``Kpi.metric``):

* durations: ``supportpulse_<metric>{stat=avg|p50|p90|p99}`` gauges;
* ratios, averages, net scores: ``supportpulse_<metric>`` gauges;
* counts over a window: ``supportpulse_<name>_window`` gauges. A windowed count goes down
  as the window slides, so it is not a counter and must not end in ``_total``;
* the one true counter: ``supportpulse_sla_breaches_total{target=first_response|next_reply|
  resolution}``, the all-time sum of the day buckets of the three breach measures (it only
  decreases if history is rewritten, which Prometheus reads as a counter reset). Every
  (tenant, channel, team) with any SLA verdict (met, breached or at risk) has all three
  target series, 0 until the first breach, so that ``increase()`` sees that breach;
* live gauges from the conversations table.

Labels are bounded: tenant, channel, team, window, stat, target; agent only when
``api_metrics_per_agent``, for the ``api_metrics_max_agents`` busiest agents of each
tenant (the rest are summed into agent="__other__"; unassigned work stays agent="").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.deps import ApiState
from services.api.kpis.repository import BucketQuery, CountRows, HistRows, fetch_counts, fetch_hist
from services.api.kpis.service import Measures, kpi_value
from services.api.live.repository import LiveRow, fetch_live
from shared.kpis import DURATION_MEASURES, KPIS, KpiKind, measures_of
from shared.windows import DAY, GRAIN_DAY, Range, floor_to, parse_duration, resolve

log = logging.getLogger(__name__)

PREFIX: Final = "supportpulse_"
DURATION_STATS: Final = ("avg", "p50", "p90", "p99")
# Agents outside the busiest N, summed; a name no agent id is likely to have.
OTHER_AGENT: Final = "__other__"
# Unassigned work keeps its own series (agent=""), outside the cap.
UNASSIGNED: Final = ""
# Closed days change only through late events; re-reading them every few seconds is waste.
HISTORY_REFRESH: Final = timedelta(minutes=5)
_HANDLED: Final = tuple(sorted(measures_of(KPIS["handled"])))
_FAR_PAST: Final = datetime(2000, 1, 1, tzinfo=UTC)
# The `target` label of supportpulse_sla_breaches_total, and the measure each one sums.
SLA_TARGETS: Final = ("first_response", "next_reply", "resolution")
_BREACH_MEASURES: Final = {target: f"sla_{target}_breaches" for target in SLA_TARGETS}
# The measures read for the counter: breaches, plus met and at risk, whose presence makes a
# group's three series exist (at 0) before its first breach.
_SLA_MEASURES: Final = tuple(
    sorted({"sla_at_risk"}.union(*(measures_of(KPIS[f"sla_{target}_compliance"]) for target in SLA_TARGETS)))
)
# The exporter asks the live view for conversations at risk now (per their policy's share).
_RISK_HORIZON: Final = timedelta(0)

Key = tuple[str, ...]
# (tenant, channel, team) -> breaches per target.
BreachTotals = dict[Key, dict[str, int]]


class KpiExporter:
    """A prometheus_client custom collector with a cache refreshed in the background."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.settings = state.settings
        self.per_agent = self.settings.api_metrics_per_agent
        self.dims: tuple[str, ...] = (
            ("tenant", "channel", "team", "agent") if self.per_agent else ("tenant", "channel", "team")
        )
        # Longest first: the busiest agents are picked over the longest window, for every window.
        self.windows = sorted(self.settings.api_metrics_windows, key=parse_duration, reverse=True)
        self._families: list[Metric] = []
        self._history: BreachTotals = {}
        self._history_until: datetime | None = None
        self._history_read_at = 0.0
        self._refresh_seconds = 0.0
        self._last_success = 0.0
        self._errors = 0

    # --- prometheus_client Collector ----------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        # Registering must not trigger a collect (auto_describe): the names vary with the data.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._families
        yield GaugeMetricFamily(
            PREFIX + "api_metrics_refresh_duration_seconds",
            "Duration of the last KPI gauge refresh.",
            value=self._refresh_seconds,
        )
        yield GaugeMetricFamily(
            PREFIX + "api_metrics_last_refresh_timestamp_seconds",
            "Unix time of the last successful KPI gauge refresh (0: none yet).",
            value=self._last_success,
        )
        yield CounterMetricFamily(
            PREFIX + "api_metrics_refresh_errors",
            "KPI gauge refreshes that failed.",
            value=self._errors,
        )

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    # --- refreshing ---------------------------------------------------------------------

    async def run(self) -> None:
        """Refresh forever; a failure keeps the previous values and is counted."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._errors += 1
                log.exception("refreshing the KPI gauges failed; serving the previous values")
            await asyncio.sleep(self.settings.api_metrics_cache_seconds)

    async def refresh(self) -> None:
        started = time.perf_counter()
        state = self.state
        tenants = tuple(sorted(state.tenants.tenants))
        families: list[Metric] = []
        if tenants:
            now = state.clock()
            floor = state.minute_floor(now)
            async with state.engine.connect() as conn:
                await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                per_window: list[tuple[str, CountRows, HistRows]] = []
                for window in self.windows:
                    plan = resolve(zone=ZoneInfo("UTC"), now=now, window=window, minute_floor=floor).plan
                    q = BucketQuery(tenants, plan, group_by=self.dims)
                    counts = await fetch_counts(conn, q)
                    hist_q = BucketQuery(
                        tenants, plan, group_by=self.dims, metrics=tuple(sorted(DURATION_MEASURES))
                    )
                    per_window.append((window, counts, await fetch_hist(conn, hist_q)))
                breaches = await self._breaches(conn, tenants, now)
                live = await fetch_live(conn, tenants, now, _RISK_HORIZON)
            families.extend(self._kpi_families(per_window))
            families.append(self._breach_family(breaches))
            families.extend(_live_families(live, now))
        self._families = families
        self._refresh_seconds = time.perf_counter() - started
        self._last_success = time.time()

    async def _breaches(self, conn: AsyncConnection, tenants: tuple[str, ...], now: datetime) -> BreachTotals:
        """All-time breaches per (tenant, channel, team) and target: closed days cached, today re-read."""
        today = floor_to(now, DAY)
        dims = ("tenant", "channel", "team")
        stale = time.monotonic() - self._history_read_at > HISTORY_REFRESH.total_seconds()
        if self._history_until != today or stale:
            rows = await fetch_counts(
                conn,
                BucketQuery(
                    tenants, (Range(GRAIN_DAY, _FAR_PAST, today),), group_by=dims, metrics=_SLA_MEASURES
                ),
            )
            self._history = _breach_counts(rows)
            self._history_until, self._history_read_at = today, time.monotonic()
        rows = await fetch_counts(
            conn,
            BucketQuery(
                tenants, (Range(GRAIN_DAY, today, today + DAY),), group_by=dims, metrics=_SLA_MEASURES
            ),
        )
        totals = {key: dict(per_target) for key, per_target in self._history.items()}
        for key, per_target in _breach_counts(rows).items():
            held = totals.setdefault(key, dict.fromkeys(SLA_TARGETS, 0))
            for target, n in per_target.items():
                held[target] += n
        return totals

    # --- building families --------------------------------------------------------------

    def _top_agents(self, counts: CountRows) -> dict[str, set[str]]:
        volume: dict[tuple[str, str], int] = {}
        for key, measures in counts.items():
            tenant, agent = key[0], key[3]
            if agent == UNASSIGNED:
                continue
            handled = sum(measures[m][0] for m in _HANDLED if m in measures)
            volume[(tenant, agent)] = volume.get((tenant, agent), 0) + handled
        ranked = sorted(volume.items(), key=lambda kv: (-kv[1], kv[0][1]))
        top: dict[str, set[str]] = {}
        for (tenant, agent), _ in ranked:
            chosen = top.setdefault(tenant, set())
            if len(chosen) < self.settings.api_metrics_max_agents:
                chosen.add(agent)
        return top

    def _groups(
        self, counts: CountRows, hist: HistRows, top: dict[str, set[str]] | None
    ) -> dict[Key, Measures]:
        groups: dict[Key, Measures] = {}
        for key in set(counts) | set(hist):
            out_key = key
            if top is not None and key[3] != UNASSIGNED and key[3] not in top.get(key[0], set()):
                out_key = (*key[:3], OTHER_AGENT)
            groups.setdefault(out_key, Measures()).add(counts.get(key, {}), hist.get(key, {}))
        return groups

    def _kpi_families(self, per_window: list[tuple[str, CountRows, HistRows]]) -> list[Metric]:
        labels = [*self.dims, "window"]
        families: dict[str, GaugeMetricFamily] = {}
        for kpi in KPIS.values():
            doc = f"{kpi.description} Over the sliding `window`."
            if kpi.kind is KpiKind.COUNT:
                families[kpi.name] = GaugeMetricFamily(PREFIX + kpi.metric, doc, labels=labels)
            elif kpi.kind is KpiKind.DURATION:
                families[kpi.name] = GaugeMetricFamily(PREFIX + kpi.metric, doc, labels=[*labels, "stat"])
            else:
                families[kpi.name] = GaugeMetricFamily(PREFIX + kpi.metric, doc, labels=labels)
        top = self._top_agents(per_window[0][1]) if self.per_agent and per_window else None
        known: set[Key] = set()
        for window, counts, hist in per_window:
            groups = self._groups(counts, hist, top)
            # Counts of groups seen in a longer window are 0, not absent, in the shorter ones.
            known.update(groups)
            for key in sorted(known):
                m = groups.get(key) or Measures()
                values = [*key, window]
                for kpi in KPIS.values():
                    family = families[kpi.name]
                    value = kpi_value(kpi, m)
                    if kpi.kind is KpiKind.COUNT:
                        family.add_metric(values, value)
                    elif kpi.kind is KpiKind.DURATION:
                        for stat in DURATION_STATS:
                            if value[stat] is not None:
                                family.add_metric([*values, stat], value[stat])
                    elif value["value"] is not None:
                        family.add_metric(values, value["value"])
        return list(families.values())

    def _breach_family(self, totals: BreachTotals) -> Metric:
        family = CounterMetricFamily(
            PREFIX + "sla_breaches",
            "SLA breaches by target: first_response (no first response by the deadline), next_reply "
            "(a customer turn not answered by its deadline, once per turn), resolution (not resolved by "
            "the deadline); each in the day of its deadline, all time (sum of day buckets).",
            labels=["tenant", "channel", "team", "target"],
        )
        for key in sorted(totals):
            for target in SLA_TARGETS:
                family.add_metric([*key, target], totals[key][target])
        return family


def _breach_counts(rows: CountRows) -> BreachTotals:
    """Breaches per target of every group with any SLA measure (0 for the targets it has none of)."""
    return {
        key: {target: measures.get(measure, (0, 0.0))[0] for target, measure in _BREACH_MEASURES.items()}
        for key, measures in rows.items()
    }


def _live_families(rows: Iterable[LiveRow], now: datetime) -> list[Metric]:
    backlog = GaugeMetricFamily(
        PREFIX + "backlog_open",
        "Open or pending conversations now (not calls).",
        labels=["tenant", "channel", "team"],
    )
    queued = GaugeMetricFamily(
        PREFIX + "calls_in_queue", "Calls waiting in a queue now.", labels=["tenant", "queue"]
    )
    longest = GaugeMetricFamily(
        PREFIX + "longest_wait_seconds",
        "Wait so far of the longest-waiting queued call.",
        labels=["tenant", "queue"],
    )
    breaching = GaugeMetricFamily(
        PREFIX + "sla_breaching_now",
        "Open conversations with a breached SLA clock (first response, next reply or resolution) still "
        "waiting for its reply or resolution.",
        labels=["tenant", "channel"],
    )
    at_risk = GaugeMetricFamily(
        PREFIX + "sla_at_risk",
        "Open conversations not breaching whose earliest running SLA clock has passed its policy's "
        "at-risk share of the target.",
        labels=["tenant", "channel"],
    )
    queues: dict[tuple[str, str], tuple[int, float]] = {}
    sla: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        if not row.is_call:
            backlog.add_metric([row.tenant, row.channel, row.team], row.backlog_open)
        else:
            calls, wait = queues.get((row.tenant, row.team), (0, 0.0))
            if row.oldest_queued_at is not None:
                wait = max(wait, (now - row.oldest_queued_at).total_seconds())
            queues[(row.tenant, row.team)] = (calls + row.calls_in_queue, wait)
        b, r = sla.get((row.tenant, row.channel), (0, 0))
        sla[(row.tenant, row.channel)] = (b + row.breaching_now, r + row.at_risk)
    for (tenant, queue), (calls, wait) in sorted(queues.items()):
        queued.add_metric([tenant, queue], calls)
        longest.add_metric([tenant, queue], max(wait, 0.0))
    for (tenant, channel), (b, r) in sorted(sla.items()):
        breaching.add_metric([tenant, channel], b)
        at_risk.add_metric([tenant, channel], r)
    return [backlog, queued, longest, breaching, at_risk]


class TenantFilter:
    """The registry's families with only the samples of some tenants (a tenant-scoped key's view)."""

    def __init__(self, registry: CollectorRegistry, tenants: set[str]) -> None:
        self.registry = registry
        self.tenants = tenants

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            # Samples without a tenant label (the API's own health) are not tenant data: kept.
            kept.samples = [
                s
                for s in family.samples
                if s.labels.get("tenant", "") in self.tenants or "tenant" not in s.labels
            ]
            yield kept
