"""The KPI registry: the one definition of every KPI.

Two layers:

* **Measures** are what the aggregator stores in minute buckets: counters (a count), values
  (count and sum, e.g. survey scores) and durations (count, sum and a log-bucket histogram).
* **KPIs** are what people read. Each is a measure shown as is, a ratio of sums of
  measures (never an average of averages), an average (sum ÷ count of one measure) or a
  net score. The API, the Prometheus export and docs/kpis.md are all generated from this
  module, so a definition changes in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


class MeasureKind(enum.StrEnum):
    COUNTER = "counter"
    VALUE = "value"
    DURATION = "duration"


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    kind: MeasureKind
    description: str


def _m(name: str, kind: MeasureKind, description: str) -> Measure:
    return Measure(name, kind, description)


C, V, D = MeasureKind.COUNTER, MeasureKind.VALUE, MeasureKind.DURATION

MEASURES: Final[dict[str, Measure]] = {
    m.name: m
    for m in (
        _m("conversations_created", C, "Conversations created."),
        _m("conversations_resolved", C, "Resolve events (a conversation resolved twice counts twice)."),
        _m("conversations_reopened", C, "Moves from resolved back to open, pending or snoozed."),
        _m("first_resolutions", C, "Conversations resolved for the first time."),
        _m("one_touch_resolutions", C, "First resolutions with at most one public human-agent message."),
        _m(
            "conversations_abandoned",
            C,
            "First resolutions with no public human-agent reply after the customer wrote.",
        ),
        _m("messages_inbound", C, "Public messages from customers."),
        _m("messages_outbound", C, "Public messages typed by human agents (no bots, automation or notes)."),
        _m("messages_bot", C, "Public messages from bots (either direction)."),
        _m(
            "first_response_seconds",
            D,
            "From creation (or bot handoff, or the latest reopen before any human reply) to the first "
            "public human-agent message; once per conversation.",
        ),
        _m(
            "next_reply_seconds",
            D,
            "After the first response: from the oldest unanswered customer message to the next public "
            "human-agent reply.",
        ),
        _m("resolution_seconds", D, "From creation to each resolve."),
        _m("first_resolution_seconds", D, "From creation to the first resolve."),
        _m("calls_offered", C, "Calls that entered a queue (once per call, transfers excluded)."),
        _m("calls_answered", C, "Queued calls answered by an agent (once per call)."),
        _m("calls_answered_in_target", C, "Calls answered within the service-level target."),
        _m("calls_abandoned", C, "Callers who hung up while queued."),
        _m("calls_short_abandoned", C, "Abandons within the short-abandon threshold."),
        _m("calls_timed_out", C, "Calls that left the queue unanswered by timeout, empty queue or key."),
        _m("asa_seconds", D, "Wait in queue of answered calls."),
        _m("abandon_wait_seconds", D, "Wait in queue of abandoned calls."),
        _m("aht_seconds", D, "Talk + hold + wrap-up of answered calls."),
        _m("csat_score", V, "CSAT answers on 1–5 (latest answer per survey)."),
        _m("csat_satisfied", C, "CSAT answers of 4 or 5."),
        _m("nps_responses", C, "NPS answers on 0–10."),
        _m("nps_promoters", C, "NPS answers of 9 or 10."),
        _m("nps_detractors", C, "NPS answers of 0 to 6."),
        _m("ces_score", V, "Customer-effort answers on 1–7."),
        _m(
            "sla_first_response_met",
            C,
            "First responses by the deadline of the SLA policy that applies (recorded at the reply).",
        ),
        _m(
            "sla_first_response_breaches",
            C,
            "Conversations with no first response by their deadline, recorded in the deadline's minute "
            "whether or not a reply comes later.",
        ),
        _m("sla_next_reply_met", C, "Customer turns answered by their next-reply deadline."),
        _m(
            "sla_next_reply_breaches",
            C,
            "Customer turns not answered by their next-reply deadline (once per turn, in the deadline's "
            "minute).",
        ),
        _m("sla_resolution_met", C, "Conversations first resolved by their resolution deadline."),
        _m(
            "sla_resolution_breaches",
            C,
            "Conversations not resolved by their resolution deadline (in the deadline's minute).",
        ),
        _m(
            "sla_at_risk",
            C,
            "SLA clocks that ran past the policy's at-risk share of their target (in that minute).",
        ),
    )
}

DURATION_MEASURES: Final = frozenset(n for n, m in MEASURES.items() if m.kind is D)


class KpiKind(enum.StrEnum):
    COUNT = "count"
    DURATION = "duration"
    RATIO = "ratio"
    AVERAGE = "average"
    NET_SCORE = "net_score"


# A linear combination of measure counts: ((measure, coefficient), ...).
Terms = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str
    kind: KpiKind
    description: str
    unit: str = ""
    # COUNT: sum of these; RATIO: numerator ÷ denominator; AVERAGE/DURATION: the one measure.
    numerator: Terms = ()
    denominator: Terms = ()
    # Prometheus metric name (without the supportpulse_ prefix).
    metric: str = ""


def _count(name: str, description: str, terms: Terms | None = None) -> Kpi:
    # A count over a sliding window goes down as the window moves: a gauge, not a `_total` counter.
    return Kpi(name, KpiKind.COUNT, description, "", terms or ((name, 1),), (), f"{name}_window")


def _duration(name: str) -> Kpi:
    return Kpi(name, KpiKind.DURATION, MEASURES[name].description, "seconds", ((name, 1),), (), name)


def _ratio(name: str, description: str, num: Terms, den: Terms) -> Kpi:
    return Kpi(name, KpiKind.RATIO, description, "ratio", num, den, name.removesuffix("_rate") + "_ratio")


def _average(name: str, measure: str, description: str) -> Kpi:
    return Kpi(
        name,
        KpiKind.AVERAGE,
        description,
        "score",
        ((measure, 1),),
        (),
        name.removesuffix("_avg") + "_score_avg",
    )


KPIS: Final[dict[str, Kpi]] = {
    k.name: k
    for k in (
        _count("conversations_created", MEASURES["conversations_created"].description),
        _count("conversations_resolved", MEASURES["conversations_resolved"].description),
        _count("conversations_reopened", MEASURES["conversations_reopened"].description),
        _count("conversations_abandoned", MEASURES["conversations_abandoned"].description),
        _count("messages_inbound", MEASURES["messages_inbound"].description),
        _count("messages_outbound", MEASURES["messages_outbound"].description),
        _count("messages_bot", MEASURES["messages_bot"].description),
        _duration("first_response_seconds"),
        _duration("next_reply_seconds"),
        _duration("resolution_seconds"),
        _duration("first_resolution_seconds"),
        _ratio(
            "one_touch_rate",
            "First-contact resolution: one-touch first resolutions ÷ first resolutions.",
            (("one_touch_resolutions", 1),),
            (("first_resolutions", 1),),
        ),
        _ratio(
            "reopen_rate",
            "Reopens ÷ resolutions.",
            (("conversations_reopened", 1),),
            (("conversations_resolved", 1),),
        ),
        _count("calls_offered", MEASURES["calls_offered"].description),
        _count("calls_answered", MEASURES["calls_answered"].description),
        _count("calls_abandoned", MEASURES["calls_abandoned"].description),
        _count("calls_short_abandoned", MEASURES["calls_short_abandoned"].description),
        _count("calls_timed_out", MEASURES["calls_timed_out"].description),
        _ratio(
            "abandonment_rate",
            "(Abandoned − short abandons) ÷ (offered − short abandons).",
            (("calls_abandoned", 1), ("calls_short_abandoned", -1)),
            (("calls_offered", 1), ("calls_short_abandoned", -1)),
        ),
        _ratio(
            "service_level",
            "Answered within target ÷ (answered + abandoned − short abandons).",
            (("calls_answered_in_target", 1),),
            (("calls_answered", 1), ("calls_abandoned", 1), ("calls_short_abandoned", -1)),
        ),
        _duration("asa_seconds"),
        _duration("abandon_wait_seconds"),
        _duration("aht_seconds"),
        _count("csat_responses", "CSAT answers (latest per survey).", (("csat_score", 1),)),
        _average("csat_avg", "csat_score", "Mean CSAT score on 1–5."),
        _ratio(
            "csat_satisfied_rate",
            "CSAT answers of 4 or 5 ÷ CSAT answers.",
            (("csat_satisfied", 1),),
            (("csat_score", 1),),
        ),
        Kpi(
            "nps",
            KpiKind.NET_SCORE,
            "Net promoter score: % promoters (9–10) − % detractors (0–6).",
            "score",
            (("nps_promoters", 1), ("nps_detractors", -1)),
            (("nps_responses", 1),),
            "nps_score",
        ),
        _count("nps_responses", MEASURES["nps_responses"].description),
        _average("ces_avg", "ces_score", "Mean customer-effort score on 1–7."),
        _count(
            "handled", "Resolutions + answered calls.", (("conversations_resolved", 1), ("calls_answered", 1))
        ),
        _count(
            "received",
            "Conversations created + calls offered.",
            (("conversations_created", 1), ("calls_offered", 1)),
        ),
        _count("sla_first_response_breaches", MEASURES["sla_first_response_breaches"].description),
        _ratio(
            "sla_first_response_compliance",
            "First responses within target ÷ (those + breaches).",
            (("sla_first_response_met", 1),),
            (("sla_first_response_met", 1), ("sla_first_response_breaches", 1)),
        ),
        _count("sla_next_reply_breaches", MEASURES["sla_next_reply_breaches"].description),
        _ratio(
            "sla_next_reply_compliance",
            "Customer turns answered within target ÷ (those + breaches).",
            (("sla_next_reply_met", 1),),
            (("sla_next_reply_met", 1), ("sla_next_reply_breaches", 1)),
        ),
        _count("sla_resolution_breaches", MEASURES["sla_resolution_breaches"].description),
        _ratio(
            "sla_resolution_compliance",
            "Resolutions within target ÷ (those + breaches).",
            (("sla_resolution_met", 1),),
            (("sla_resolution_met", 1), ("sla_resolution_breaches", 1)),
        ),
        _count(
            "sla_breaches",
            "Breaches of every SLA target: first response, next reply and resolution.",
            (
                ("sla_first_response_breaches", 1),
                ("sla_next_reply_breaches", 1),
                ("sla_resolution_breaches", 1),
            ),
        ),
        _count("sla_at_risk", MEASURES["sla_at_risk"].description),
    )
}


@dataclass(frozen=True, slots=True)
class Sums:
    """Summed counts and sums of measures over a window, the input of every KPI."""

    counts: Mapping[str, float]
    sums: Mapping[str, float]

    def combine(self, terms: Terms) -> float:
        return sum(self.counts.get(name, 0) * coef for name, coef in terms)


def ratio(sums: Sums, kpi: Kpi) -> tuple[float, float, float | None]:
    """(numerator, denominator, value) of a ratio or net-score KPI; value None when undefined."""
    num, den = sums.combine(kpi.numerator), sums.combine(kpi.denominator)
    if den <= 0:
        return num, den, None
    value = num / den
    return num, den, value * 100.0 if kpi.kind is KpiKind.NET_SCORE else value


def average(sums: Sums, kpi: Kpi) -> tuple[float, float, float | None]:
    """(sum, count, mean) of an average KPI."""
    measure = kpi.numerator[0][0]
    count, total = sums.counts.get(measure, 0), sums.sums.get(measure, 0.0)
    return total, count, (total / count if count > 0 else None)


def measures_of(kpi: Kpi) -> set[str]:
    return {name for name, _ in kpi.numerator + kpi.denominator}


def _check_registry() -> None:
    for kpi in KPIS.values():
        missing = measures_of(kpi) - MEASURES.keys()
        if missing:
            raise RuntimeError(f"KPI {kpi.name} uses unknown measures {sorted(missing)}")


_check_registry()
