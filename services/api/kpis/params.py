"""Query parameters shared by the KPI endpoints: the window and the dimension filters.

The dependencies are ``async def`` although they never await: FastAPI runs a plain ``def``
dependency in a worker thread, and three thread hops per request cost more than the parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query

from services.api.deps import State, Tenant
from services.api.errors import invalid
from services.api.kpis.repository import DIMENSIONS, Filters
from shared.windows import Window, WindowError, resolve


@dataclass(frozen=True, slots=True)
class WindowArgs:
    window: str | None
    start: str | None
    end: str | None
    period: str | None

    def resolve(self, tenant: Tenant, now: datetime, minute_floor: datetime | None) -> Window:
        try:
            return resolve(
                zone=tenant.zone,
                now=now,
                window=self.window,
                start=self.start,
                end=self.end,
                period=self.period,
                minute_floor=minute_floor,
            )
        except WindowError as exc:
            raise invalid(exc.param, exc.message) from None


async def window_args(
    window: Annotated[
        str | None,
        Query(
            description="Relative window ending now: `<n>m`, `<n>h` or `<n>d`, e.g. 5m, 1h, 24h, 7d. "
            "The default when no window, from/to or period is given is 1h.",
            examples=["1h"],
        ),
    ] = None,
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="ISO 8601 start (with `to`); without an offset, in the tenant's time zone.",
            examples=["2026-11-20T08:00:00Z"],
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="ISO 8601 end, exclusive (with `from`).",
            examples=["2026-11-20T12:00:00Z"],
        ),
    ] = None,
    period: Annotated[
        str | None,
        Query(
            description="Calendar period in the tenant's time zone: today, yesterday, day:2026-11-20, "
            "week:2026-W47, month:2026-11. Cut at now.",
            examples=["today"],
        ),
    ] = None,
) -> WindowArgs:
    return WindowArgs(window, start, end, period)


async def kpi_window(
    state: State, tenant: Tenant, args: Annotated[WindowArgs, Depends(window_args)]
) -> Window:
    now = state.clock()
    return args.resolve(tenant, now, state.minute_floor(now))


def _values(values: list[str] | None) -> tuple[str, ...]:
    # Repeated parameters and comma-separated lists both work: ?channel=a&channel=b or ?channel=a,b.
    return tuple(dict.fromkeys(v.strip() for raw in values or () for v in raw.split(",") if v.strip()))


async def filters(
    channel: Annotated[list[str] | None, Query(description="Only these channels.", examples=["chat"])] = None,
    team: Annotated[list[str] | None, Query(description="Only these teams (or call queues).")] = None,
    queue: Annotated[
        list[str] | None, Query(description="Only these call queues (the team column, channel phone only).")
    ] = None,
    agent: Annotated[list[str] | None, Query(description="Only these agents.")] = None,
    label: Annotated[
        str | None, Query(description="Only conversations carrying this label (one label: labels overlap).")
    ] = None,
) -> Filters:
    return Filters(_values(channel), _values(team), _values(queue), _values(agent), label or None)


async def group_by(
    group_by: Annotated[
        list[str] | None,
        Query(
            description=f"One or two of {', '.join(DIMENSIONS)} (repeated or comma-separated).",
            examples=["channel"],
        ),
    ] = None,
) -> tuple[str, ...]:
    dims = _values(group_by)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise invalid(
            "group_by", f"unknown dimension {unknown[0]!r}; use one or two of {', '.join(DIMENSIONS)}"
        )
    if len(dims) > 2:
        raise invalid("group_by", f"at most two dimensions, got {len(dims)}")
    if {"team", "queue"} <= set(dims):
        raise invalid("group_by", "team and queue are the same column; group by one of them")
    return dims
