"""Render docs/kpis.md from the KPI registry, so the documentation cannot drift from the code.

``python -m shared.kpi_docs > docs/kpis.md`` regenerates it; a test fails when it is stale.
"""

from __future__ import annotations

from shared.kpis import KPIS, MEASURES, Kpi, KpiKind, Terms

HEADER = """# KPI definitions

Generated from `shared/kpis.py` by `python -m shared.kpi_docs > docs/kpis.md`; do not edit by hand.

Every KPI is computed from **measures** summed over minute, hour and day buckets (UTC), cut by
tenant, channel, team/queue, agent and label. Rates are ratios of summed counts, never averages of
averages, and the API returns their numerator and denominator so a client can re-aggregate.
Durations are recorded in the minute in which they complete (the reply, the resolve, the answer),
with count, sum and a log-bucket histogram: every quantile is within 1 % of the true value, and
max is the highest non-empty bucket's value (also within 1 %).

Thresholds (configurable, see docs/configuration.md; a change applies to history after
`supportpulse replay`): short abandon 5 s, service-level target 20 s, first-response SLA targets
per channel (chat 5 min, WhatsApp/SMS 15 min, social 1 h, email 4 h by default).

"""


def _terms(terms: Terms) -> str:
    parts = []
    for i, (name, coef) in enumerate(terms):
        sign = "" if i == 0 and coef > 0 else (" − " if coef < 0 else " + ")
        parts.append(f"{sign}`{name}`")
    return "".join(parts)


def _formula(kpi: Kpi) -> str:
    if kpi.kind is KpiKind.COUNT:
        return _terms(kpi.numerator)
    if kpi.kind is KpiKind.DURATION:
        return f"histogram of `{kpi.numerator[0][0]}`"
    if kpi.kind is KpiKind.AVERAGE:
        name = kpi.numerator[0][0]
        return f"sum(`{name}`) ÷ count(`{name}`)"
    if kpi.kind is KpiKind.NET_SCORE:
        return f"100 × ({_terms(kpi.numerator)}) ÷ ({_terms(kpi.denominator)})"
    return f"({_terms(kpi.numerator)}) ÷ ({_terms(kpi.denominator)})"


def render() -> str:
    lines = [HEADER, "## KPIs\n", "| KPI | kind | formula | Prometheus | meaning |", "|---|---|---|---|---|"]
    for kpi in KPIS.values():
        cells = (
            f"`{kpi.name}`",
            kpi.kind.value,
            _formula(kpi),
            f"`supportpulse_{kpi.metric}`",
            kpi.description,
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Measures (what the aggregator stores)\n",
        "| measure | kind | definition |",
        "|---|---|---|",
    ]
    for measure in MEASURES.values():
        lines.append(f"| `{measure.name}` | {measure.kind.value} | {measure.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
