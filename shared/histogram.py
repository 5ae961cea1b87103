"""Mergeable log-bucket histograms for duration KPIs.

A value v > 0 falls in bucket ``ceil(log(v) / log(GAMMA))``; every value in bucket i
lies in (GAMMA**(i-1), GAMMA**i], and reporting ``2 * GAMMA**i / (GAMMA + 1)`` for it is
within ``(GAMMA - 1) / (GAMMA + 1)`` (< 1 %) of the true value. Merging two histograms is
adding integer counts per bucket index, so minute buckets roll up into any window with
``SUM(count) GROUP BY idx`` in SQL, in any order, with the same result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

GAMMA: Final = 1.02
RELATIVE_ERROR: Final = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA: Final = math.log(GAMMA)
# Durations below a millisecond are noise for support KPIs; they share one bucket.
MIN_VALUE: Final = 0.001
MIN_INDEX: Final = math.ceil(math.log(MIN_VALUE) / _LOG_GAMMA)


def bucket_index(value: float) -> int:
    if value <= MIN_VALUE:
        return MIN_INDEX
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The representative value of a bucket (minimises the worst relative error)."""
    if index <= MIN_INDEX:
        return 0.0 if index < MIN_INDEX else MIN_VALUE
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1) of a histogram given as index → count; None when empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    # Rank of the nearest-rank quantile, as a 0-based position among the sorted values.
    rank = q * (total - 1)
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen > rank:
            return bucket_value(index)
    return bucket_value(max(counts))


def quantiles(counts: Mapping[int, int], qs: Iterable[float]) -> dict[float, float | None]:
    """Several quantiles in one pass over the sorted buckets."""
    wanted = sorted(set(qs))
    total = sum(counts.values())
    result: dict[float, float | None] = dict.fromkeys(wanted)
    if total <= 0:
        return result
    seen = 0
    pending = iter(wanted)
    q = next(pending, None)
    for index in sorted(counts):
        seen += counts[index]
        while q is not None and seen > q * (total - 1):
            result[q] = bucket_value(index)
            q = next(pending, None)
        if q is None:
            break
    return result


def merge(into: dict[int, int], other: Mapping[int, int]) -> dict[int, int]:
    for index, count in other.items():
        into[index] = into.get(index, 0) + count
    return into
