"""The integer fast path for calendar-time targets equals the definition in shared.sla."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.aggregator.sla import SlaBook, _evaluate
from services.aggregator.sla_clocks import clocks
from services.aggregator.walk import Walk
from shared.sla.calendar import ALWAYS
from shared.sla.policy import Policy, Target

BASE = 1_763_632_800.0  # 2025-11-20 10:00 UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# On a 30 s grid, so replies land exactly on deadlines and pauses on at-risk instants (the
# edges where < and <= differ), or at any millisecond, so sub-second rounding is exercised.
offsets = st.integers(min_value=0, max_value=480).map(lambda k: BASE + 30 * k) | st.integers(
    min_value=0, max_value=4 * 3600 * 1000
).map(lambda ms: BASE + ms / 1000)
statuses = st.sampled_from(["open", "pending", "snoozed", "resolved"])
targets = (
    st.none()
    | st.integers(min_value=1, max_value=120).map(lambda k: 30.0 * k)
    | st.floats(min_value=1, max_value=7200).map(lambda s: round(s, 3))
)


@st.composite
def walks(draw: st.DrawFn) -> Walk:
    created = draw(offsets)
    changes = sorted(draw(st.lists(st.tuples(offsets, statuses), max_size=6)))
    turns = []
    for asked in sorted(draw(st.lists(offsets, max_size=4))):
        answered = draw(
            st.none() | st.integers(min_value=0, max_value=120).map(lambda k, a=asked: a + 30 * k)
        )
        turns.append((asked, answered, "bob"))
    return Walk(
        created_at=created,
        sla_start=draw(st.none() | st.just(created) | offsets),
        first_response_at=draw(st.none() | offsets),
        first_replier="alice",
        statuses=[(created, "open"), *[(max(t, created), s) for t, s in changes]],
        turns=turns,
    )


_EDGE = Walk(created_at=BASE, sla_start=BASE, statuses=[(BASE, "open")])


@settings(max_examples=600, deadline=None)
@given(
    walk=walks(),
    first=targets,
    next_reply=targets,
    resolution=targets,
    pausing=st.sampled_from([(), ("pending",), ("pending", "snoozed")]),
    share=st.sampled_from([0.5, 0.8, 1.0]),
    now=offsets,
)
# Now exactly at the deadline (still running: a reply then would be in time)...
@example(walk=_EDGE, first=300.0, next_reply=None, resolution=None, pausing=(), share=0.8, now=BASE + 300)
# ...and a reply in the same microsecond as a resolve (the reply stops the clock: met).
@example(
    walk=Walk(
        created_at=BASE,
        sla_start=BASE,
        first_response_at=BASE + 100,
        statuses=[(BASE, "open"), (BASE + 100, "resolved")],
    ),
    first=300.0,
    next_reply=None,
    resolution=None,
    pausing=(),
    share=0.8,
    now=BASE + 1000,
)
def test_fast_path_equals_the_definition(
    walk: Walk,
    first: float | None,
    next_reply: float | None,
    resolution: float | None,
    pausing: tuple[str, ...],
    share: float,
    now: float,
) -> None:
    policy = Policy(
        tenant="t1",
        name="p",
        version=1,
        effective_from=EPOCH,
        first_response=None if first is None else Target(seconds=first),
        next_reply=None if next_reply is None else Target(seconds=next_reply),
        resolution=None if resolution is None else Target(seconds=resolution),
        pausing_statuses=pausing,
        at_risk_share=share,
    )
    plan = SlaBook().plan(policy)
    assert plan is not None
    assert clocks(walk, plan, now) == _evaluate(walk, policy, {ALWAYS.name: ALWAYS}, now)


def test_business_time_targets_take_the_definition() -> None:
    policy = Policy(
        tenant="t1",
        name="p",
        version=1,
        effective_from=EPOCH,
        first_response=Target(seconds=60, clock="business", calendar="office"),
    )
    assert SlaBook().plan(policy) is None
