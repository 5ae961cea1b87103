"""GET /v1/kpis, /v1/kpis/timeseries and /v1/agents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.api.deps import Conn, State, Tenant
from services.api.errors import AUTH_RESPONSES, invalid
from services.api.kpis.cache import ANSWERS
from services.api.kpis.params import WindowArgs, filters, group_by, kpi_window, window_args
from services.api.kpis.repository import BucketQuery, Filters, fetch_counts, fetch_hist
from services.api.kpis.schemas import AgentsResponse, KpisResponse, TimeseriesResponse
from services.api.kpis.service import STATS, Measures, all_kpis, kpi_value, stat_value
from shared.kpis import KPIS, KpiKind, measures_of
from shared.windows import GRAIN_MINUTE, Range, Window, WindowError, ceil_to, floor_to, parse_step

MAX_POINTS = 2000

router = APIRouter(tags=["kpis"], responses=AUTH_RESPONSES)

WindowDep = Annotated[Window, Depends(kpi_window)]
FiltersDep = Annotated[Filters, Depends(filters)]


def _window_out(window: Window) -> dict[str, Any]:
    return {"start": window.start, "end": window.end, "approximate": window.approximate}


@router.get(
    "/v1/kpis",
    response_model=KpisResponse,
    summary="Every KPI over a window, optionally grouped",
    description="Sums the minute, hour and day buckets that cover the window (one query for counts, one for "
    "histograms) and derives every KPI of the registry. Without `label` only the all-conversations rows are "
    "read; with `label` (or `group_by=label`) the per-label rows.",
)
async def get_kpis(
    tenant: Tenant,
    window: WindowDep,
    conn: Conn,
    where: FiltersDep,
    dims: Annotated[tuple[str, ...], Depends(group_by)],
) -> dict[str, Any]:
    q = BucketQuery((tenant.name,), window.plan, where, dims)

    async def compute() -> list[dict[str, Any]]:
        counts = await fetch_counts(conn, q)
        hist = await fetch_hist(conn, q)
        keys = sorted(set(counts) | set(hist)) if dims else [()]
        return [
            {
                "group": dict(zip(dims, key, strict=True)),
                "kpis": all_kpis(Measures.of(counts.get(key), hist.get(key))),
            }
            for key in keys
        ]

    groups = await ANSWERS.get(conn, tenant.name, window.plan, ("kpis", q), compute)
    return {"tenant": tenant.name, "window": _window_out(window), "groups": groups}


@router.get(
    "/v1/kpis/timeseries",
    response_model=TimeseriesResponse,
    summary="One stat of one KPI per step",
    description="Buckets of one grain binned into steps: minute buckets for steps under 1h, hour buckets "
    "under 1d, day (UTC) buckets otherwise. Steps are aligned on the Unix epoch and the window is widened to "
    f"whole steps; at most {MAX_POINTS} points.",
)
async def get_timeseries(
    state: State,
    tenant: Tenant,
    conn: Conn,
    where: FiltersDep,
    args: Annotated[WindowArgs, Depends(window_args)],
    kpi: Annotated[
        str, Query(description="A KPI name from the registry.", examples=["first_response_seconds"])
    ],
    stat: Annotated[
        str | None,
        Query(
            description="count|avg|p50|p90|p95|p99|max for durations; value|numerator|denominator for "
            "ratios and net scores; value|sum|count for averages; value for counts. Default: avg for "
            "durations, value otherwise.",
            examples=["p90"],
        ),
    ] = None,
    step: Annotated[str, Query(description="Step: <n>m, <n>h or <n>d.", examples=["5m"])] = "5m",
) -> dict[str, Any]:
    definition = KPIS.get(kpi)
    if definition is None:
        raise invalid("kpi", f"unknown KPI {kpi!r}; known: {', '.join(KPIS)}")
    valid = STATS[definition.kind]
    stat = stat or valid[0]
    if stat not in valid:
        raise invalid(
            "stat",
            f"{stat!r} does not apply to {kpi} ({definition.kind.value}); use one of {', '.join(valid)}",
        )
    try:
        step_delta, grain = parse_step(step)
    except WindowError as exc:
        raise invalid(exc.param, exc.message) from None
    now = state.clock()
    asked = args.resolve(tenant, now, None)
    start, end = floor_to(asked.start, step_delta), ceil_to(asked.end, step_delta)
    points = (end - start) // step_delta
    if points > MAX_POINTS:
        raise invalid("step", f"{points} points of {step}; at most {MAX_POINTS}: use a longer step or window")
    floor = state.minute_floor(now)
    if grain == GRAIN_MINUTE and start < floor:
        raise invalid(
            "step",
            f"{step} needs minute buckets, kept only since {floor.isoformat()}; use a step of "
            "1h or more for this window",
        )
    window = Window(
        start, end, asked.approximate or (start, end) != (asked.start, asked.end), (Range(grain, start, end),)
    )
    needs_hist = definition.kind is KpiKind.DURATION and stat not in ("avg", "count")
    q = BucketQuery(
        (tenant.name,), window.plan, where, metrics=tuple(sorted(measures_of(definition))), step=step_delta
    )

    async def compute() -> list[dict[str, Any]]:
        counts = await fetch_counts(conn, q)
        hist = await fetch_hist(conn, q) if needs_hist else {}
        series = []
        t = start
        while t < end:
            m = Measures.of(counts.get((t,)), hist.get((t,)))
            series.append({"t": t, "value": stat_value(definition, stat, m)})
            t += step_delta
        return series

    series = await ANSWERS.get(conn, tenant.name, window.plan, ("timeseries", q, stat), compute)
    return {
        "tenant": tenant.name,
        "kpi": kpi,
        "stat": stat,
        "step": step,
        "window": _window_out(window),
        "points": series,
    }


_LEADERBOARD_MEASURES = tuple(
    sorted(
        measures_of(KPIS["handled"])
        | measures_of(KPIS["csat_avg"])
        | measures_of(KPIS["csat_satisfied_rate"])
        | {"first_response_seconds", "resolution_seconds", "sla_first_response_breaches"}
    )
)


def _agent_row(agent: str, m: Measures) -> dict[str, Any]:
    first = kpi_value(KPIS["first_response_seconds"], m)
    resolution = kpi_value(KPIS["resolution_seconds"], m)
    csat = kpi_value(KPIS["csat_avg"], m)
    return {
        "agent": agent,
        "handled": kpi_value(KPIS["handled"], m),
        "first_response_seconds": {k: first[k] for k in ("count", "avg", "p50", "p90")},
        "resolution_seconds": {"avg": resolution["avg"], "p50": resolution["p50"]},
        "csat": {
            "avg": csat["value"],
            "responses": kpi_value(KPIS["csat_responses"], m),
            "satisfied_rate": kpi_value(KPIS["csat_satisfied_rate"], m)["value"],
        },
        "sla_first_response_breaches": kpi_value(KPIS["sla_first_response_breaches"], m),
    }


@router.get(
    "/v1/agents",
    response_model=AgentsResponse,
    summary="Agent leaderboard over a window",
    description="One row per assigned agent, sorted by handled (resolutions + answered calls) descending. "
    "Facts are attributed to the agent who did them (the replier for first responses, the rated agent "
    "for CSAT).",
)
async def get_agents(
    tenant: Tenant,
    window: WindowDep,
    conn: Conn,
    where: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Rows to return.")] = 50,
) -> dict[str, Any]:
    f = Filters(where.channel, where.team, where.queue, where.agent, where.label, assigned_only=True)
    q = BucketQuery((tenant.name,), window.plan, f, ("agent",), metrics=_LEADERBOARD_MEASURES)
    hist_q = BucketQuery(
        (tenant.name,), window.plan, f, ("agent",), metrics=("first_response_seconds", "resolution_seconds")
    )

    async def compute() -> list[dict[str, Any]]:
        counts = await fetch_counts(conn, q)
        hist = await fetch_hist(conn, hist_q)
        rows = [
            _agent_row(key[0], Measures.of(counts.get(key), hist.get(key))) for key in set(counts) | set(hist)
        ]
        rows.sort(key=lambda r: (-r["handled"], r["agent"]))
        return rows

    rows = await ANSWERS.get(conn, tenant.name, window.plan, ("agents", q), compute)
    return {"tenant": tenant.name, "window": _window_out(window), "agents": rows[:limit]}
