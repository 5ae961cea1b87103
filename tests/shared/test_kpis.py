"""The KPI registry: one definition per KPI, documented from the code, rates from summed counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.kpi_docs import render
from shared.kpis import KPIS, MEASURES, KpiKind, Sums, average, measures_of, ratio

DOC = Path(__file__).resolve().parents[2] / "docs" / "kpis.md"


def test_docs_kpis_md_is_generated_from_the_registry() -> None:
    assert DOC.read_text() == render(), "docs/kpis.md is stale: python -m shared.kpi_docs > docs/kpis.md"


def test_every_measure_feeds_a_kpi_and_every_kpi_has_a_prometheus_name() -> None:
    used = set().union(*(measures_of(k) for k in KPIS.values()))
    assert used == set(MEASURES)
    assert all(k.metric for k in KPIS.values())
    assert len({k.metric for k in KPIS.values()}) == len(KPIS)


def test_rates_are_ratios_of_summed_counts_not_averages_of_averages() -> None:
    # Two teams: 1 of 2 calls abandoned, and 0 of 98. The mean of the two rates is 25 %;
    # the true rate over both is 1 %.
    team_a = {"calls_offered": 2, "calls_abandoned": 1}
    team_b = {"calls_offered": 98, "calls_abandoned": 0}
    summed = Sums({k: team_a[k] + team_b[k] for k in team_a}, {})
    num, den, value = ratio(summed, KPIS["abandonment_rate"])
    assert (num, den, value) == (1, 100, pytest.approx(0.01))


def test_short_abandons_leave_both_sides_of_the_abandonment_rate() -> None:
    sums = Sums({"calls_offered": 10, "calls_abandoned": 3, "calls_short_abandoned": 1}, {})
    assert ratio(sums, KPIS["abandonment_rate"]) == (2, 9, pytest.approx(2 / 9))


def test_service_level_counts_abandons_in_the_denominator() -> None:
    sums = Sums(
        {
            "calls_answered_in_target": 8,
            "calls_answered": 9,
            "calls_abandoned": 3,
            "calls_short_abandoned": 2,
        },
        {},
    )
    assert ratio(sums, KPIS["service_level"]) == (8, 10, pytest.approx(0.8))


def test_nps_and_averages() -> None:
    sums = Sums(
        {"nps_responses": 10, "nps_promoters": 6, "nps_detractors": 1, "csat_score": 4}, {"csat_score": 17.0}
    )
    assert ratio(sums, KPIS["nps"])[2] == pytest.approx(50.0)
    assert average(sums, KPIS["csat_avg"]) == (17.0, 4, 4.25)
    assert ratio(Sums({}, {}), KPIS["nps"])[2] is None  # no answers: undefined, not zero


def test_kinds_are_consistent() -> None:
    for kpi in KPIS.values():
        if kpi.kind in (KpiKind.RATIO, KpiKind.NET_SCORE):
            assert kpi.denominator, kpi.name
        else:
            assert not kpi.denominator, kpi.name
