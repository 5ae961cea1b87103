"""Bucket deltas accumulated between flushes.

The hot path only folds facts into minute-level dictionaries keyed by the conversation's
label set; the expansion into hour and day grains and per-label rows happens once per
distinct key at flush time, where many facts have already collapsed into one key.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.aggregator.walk import Fact
from shared.db.schema import GRAIN_DAY, GRAIN_HOUR, GRAIN_MINUTE
from shared.histogram import bucket_index
from shared.kpis import DURATION_MEASURES

# (tenant, minute, measure, channel, team, agent, labels)
CountKey = tuple[str, int, str, str, str, str, tuple[str, ...]]
# (tenant, grain, bucket, metric, channel, team, agent, label)
RowKey = tuple[str, int, int, str, str, str, str, str]


class Deltas:
    __slots__ = ("counts", "hist")

    def __init__(self) -> None:
        self.counts: dict[CountKey, list[float]] = {}
        self.hist: dict[tuple[CountKey, int], int] = {}

    def __bool__(self) -> bool:
        return bool(self.counts)

    def add(self, tenant: str, fact: Fact, sign: int) -> None:
        key = (tenant, fact.minute, fact.measure, fact.channel, fact.team, fact.agent, fact.labels)
        slot = self.counts.get(key)
        if slot is None:
            self.counts[key] = [sign, sign * fact.value]
        else:
            slot[0] += sign
            slot[1] += sign * fact.value
        if fact.measure in DURATION_MEASURES:
            hkey = (key, bucket_index(fact.value))
            self.hist[hkey] = self.hist.get(hkey, 0) + sign

    def rows(
        self, minute_horizon: int
    ) -> tuple[list[tuple[RowKey, int, float]], list[tuple[RowKey, int, int]]]:
        """Rows to upsert, sorted by key so concurrent flushes lock rows in one order.

        Minute rows older than ``minute_horizon`` (epoch seconds) are left out: retention has
        removed that minute, and a late event must not bring a lone minute back.
        """
        counts: dict[RowKey, list[float]] = {}
        for key, (count, total) in self.counts.items():
            if count == 0 and total == 0:
                continue
            for row in _expand(key, minute_horizon):
                slot = counts.get(row)
                if slot is None:
                    counts[row] = [count, total]
                else:
                    slot[0] += count
                    slot[1] += total
        hist: dict[tuple[RowKey, int], int] = {}
        for (key, index), count in self.hist.items():
            if count == 0:
                continue
            for row in _expand(key, minute_horizon):
                hkey = (row, index)
                hist[hkey] = hist.get(hkey, 0) + count
        count_rows = sorted((k, int(v[0]), v[1]) for k, v in counts.items())
        hist_rows = sorted((k, i, c) for (k, i), c in hist.items() if c)
        return count_rows, hist_rows


def _expand(key: CountKey, minute_horizon: int) -> list[RowKey]:
    tenant, minute, metric, channel, team, agent, labels = key
    buckets = [(GRAIN_HOUR, minute - minute % 3600), (GRAIN_DAY, minute - minute % 86400)]
    if minute >= minute_horizon:
        buckets.append((GRAIN_MINUTE, minute))
    out: list[RowKey] = []
    for grain, start in buckets:
        out.append((tenant, grain, start, metric, channel, team, agent, ""))
        for label in labels:
            out.append((tenant, grain, start, metric, channel, team, agent, label))
    return out


def to_datetime(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
