"""KPI values from summed buckets, by the definitions of shared.kpis (never redefined here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from shared.histogram import bucket_value, merge, quantiles
from shared.kpis import KPIS, Kpi, KpiKind, Sums, average, ratio

QUANTILES: Final = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}

# The stats a time series may ask of each kind of KPI; the first is the default.
STATS: Final[dict[KpiKind, tuple[str, ...]]] = {
    KpiKind.COUNT: ("value", "count"),
    KpiKind.DURATION: ("avg", "count", "p50", "p90", "p95", "p99", "max"),
    KpiKind.RATIO: ("value", "numerator", "denominator"),
    KpiKind.NET_SCORE: ("value", "numerator", "denominator"),
    KpiKind.AVERAGE: ("value", "sum", "count"),
}


@dataclass(slots=True)
class Measures:
    """The summed measures of one group of buckets."""

    counts: dict[str, int] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    hist: dict[str, dict[int, int]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, counts: Mapping[str, tuple[int, float]] | None, hist: Mapping[str, dict[int, int]] | None
    ) -> Measures:
        m = cls()
        m.add(counts or {}, hist or {})
        return m

    def add(self, counts: Mapping[str, tuple[int, float]], hist: Mapping[str, Mapping[int, int]]) -> None:
        """Fold more buckets in: counts, sums and histograms are all additive."""
        for name, (count, total) in counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
            self.sums[name] = self.sums.get(name, 0.0) + total
        for name, buckets in hist.items():
            merge(self.hist.setdefault(name, {}), buckets)

    @property
    def registry_sums(self) -> Sums:
        return Sums(self.counts, self.sums)


def _measure(kpi: Kpi) -> str:
    return kpi.numerator[0][0]


def duration_stats(m: Measures, kpi: Kpi) -> dict[str, Any]:
    """count, avg, p50..p99 and max of a duration KPI (seconds; None when empty).

    avg is exact (sum ÷ count); quantiles and max come from the merged log-bucket
    histogram, within shared.histogram.RELATIVE_ERROR of the true values.
    """
    name = _measure(kpi)
    count = m.counts.get(name, 0)
    buckets = {i: c for i, c in m.hist.get(name, {}).items() if c > 0}
    qs = quantiles(buckets, QUANTILES.values())
    return {
        "count": count,
        "avg": m.sums.get(name, 0.0) / count if count > 0 else None,
        **{label: qs[q] for label, q in QUANTILES.items()},
        "max": bucket_value(max(buckets)) if buckets else None,
    }


def kpi_value(kpi: Kpi, m: Measures) -> Any:
    """One KPI as the API shows it (see the response schemas)."""
    sums = m.registry_sums
    if kpi.kind is KpiKind.COUNT:
        return int(sums.combine(kpi.numerator))
    if kpi.kind is KpiKind.DURATION:
        return duration_stats(m, kpi)
    if kpi.kind is KpiKind.AVERAGE:
        total, count, value = average(sums, kpi)
        return {"value": value, "sum": total, "count": int(count)}
    num, den, value = ratio(sums, kpi)
    return {"value": value, "numerator": int(num), "denominator": int(den)}


def all_kpis(m: Measures, names: Iterable[str] = KPIS) -> dict[str, Any]:
    return {name: kpi_value(KPIS[name], m) for name in names}


def stat_value(kpi: Kpi, stat: str, m: Measures) -> float | None:
    """One number of a KPI for a time-series point; ``stat`` is one of STATS[kpi.kind]."""
    value = kpi_value(kpi, m)
    if kpi.kind is KpiKind.COUNT:
        return float(value)
    result = value[stat]
    return None if result is None else float(result)
