"""The engine behind :mod:`shared.sla.calendar`: when a calendar is open, as UTC microseconds.

All arithmetic is on integer microseconds since the Unix epoch, so adding business time
and measuring it back round-trips exactly (floats at 1.8e9 s would lose a few tenths of a
microsecond per operation, and ``datetime`` only holds microseconds anyway).

The rule (see docs/sla.md): an instant is *open* when its wall-clock time in the calendar's
zone lies in a period of its wall-clock date; business time is real elapsed time while
open. So a period spanning a skipped hour loses it, and one spanning a repeated hour
counts it twice. Wall-clock time is not monotonic across a fall-back (and, in a few zones,
jumps a whole date), so open intervals are computed per fixed **UTC chunk** of 24 hours:
within a chunk, the UTC offset is constant on a few *segments*, and on each segment wall
time is a plain shift of UTC time, which maps each period onto at most one interval.
Chunks are cached, so a deadline recomputed on every event costs a few dict lookups.

Offsets are probed, since ``zoneinfo`` does not expose its transition table: a chunk whose
offset is the same at both ends and in the middle is taken as one segment; otherwise it is
probed every :data:`PROBE_SECONDS` and each transition found by bisection. The weekly fast
path compares the offsets at the chunk edges. Both rely on no zone changing its offset and
back within a day: in the whole tz database the closest two transitions of a zone are
four days apart (Africa/Freetown, before 1970; a week since).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

US: Final = 1_000_000
DAY: Final = 86_400 * US
WEEK: Final = 7 * DAY
PROBE_SECONDS: Final = 6 * 3600
# Nothing real is closed this long; beyond it a calendar is treated as never opening again.
HORIZON_DAYS: Final = 366 * 20
# Cached chunks per calendar (about 11 years of days); cleared wholesale when full.
MAX_CACHED: Final = 4096

_ONE_US: Final = timedelta(microseconds=1)
_Y2K: Final = 946_684_800  # 2000-01-01T00:00:00Z, in seconds
# 1970-01-01 was a Thursday: Monday-based weekday of day index d is (d + 3) % 7.
_THURSDAY: Final = 3

Span = tuple[int, int]


class BeyondHorizon(ValueError):
    """The answer lies more than :data:`HORIZON_DAYS` ahead (a calendar open minutes a week)."""


class Hours:
    """Open intervals of one calendar; built once per calendar and cached on it.

    ``week[i]`` holds the periods of weekday ``i`` (Monday = 0) and ``special`` those of
    dates that override the week (holidays map to no period), keyed by *day index*: days
    since 1970-01-01 on the wall clock. Periods are ``(start, end)`` microseconds after the
    wall-clock midnight, sorted and disjoint.
    """

    __slots__ = (
        "_chunks",
        "_edges",
        "_plain",
        "_special_days",
        "always",
        "shift",
        "special",
        "week",
        "weekly",
        "zone",
    )

    def __init__(
        self, zone: ZoneInfo, week: Sequence[Sequence[Span]], special: Mapping[int, Sequence[Span]]
    ) -> None:
        self.zone = zone
        self.week = tuple(tuple(day) for day in week)
        self.special = {day: tuple(spans) for day, spans in special.items()}
        self._special_days = sorted(self.special)
        self.weekly = sum(end - start for day in self.week for start, end in day)
        self.always = not self.special and all(day == ((0, DAY),) for day in self.week)
        # Align chunks on the zone's local midnight (January offset) so a typical day's
        # periods fall into one chunk; correctness does not depend on it.
        self.shift = -self._offset(_Y2K)
        self._chunks: dict[int, tuple[Span, ...]] = {}
        self._plain: dict[int, bool] = {}
        self._edges: dict[int, int] = {}

    # offsets -----------------------------------------------------------------------

    def _offset(self, second: int) -> int:
        offset = datetime.fromtimestamp(second, self.zone).utcoffset()
        if offset is None:  # pragma: no cover - ZoneInfo always has one
            raise ValueError(f"zone {self.zone} has no offset at {second}")
        return offset // _ONE_US

    def _edge(self, k: int) -> int:
        """The offset at the first second of chunk ``k``; neighbouring chunks share it."""
        found = self._edges.get(k)
        if found is None:
            if len(self._edges) >= MAX_CACHED:
                self._edges.clear()
            found = self._edges[k] = self._offset(self.chunk_start(k) // US)
        return found

    def _segments(self, k: int) -> list[tuple[int, int, int]]:
        """``(start, end, offset)`` pieces of chunk ``k`` with a constant UTC offset."""
        lo = self.chunk_start(k)
        hi = lo + DAY
        offset = self._edge(k)
        if offset == self._edge(k + 1) == self._offset((lo + hi) // 2 // US):
            return [(lo, hi, offset)]  # the usual day: no transition
        probe, last = lo // US, hi // US - 1
        start, out = lo, []
        while probe < last:
            ahead = min(probe + PROBE_SECONDS, last)
            if self._offset(ahead) == offset:
                probe = ahead
                continue
            before, after = probe, ahead  # offset(before) == offset != offset(after)
            while after - before > 1:
                middle = (before + after) // 2
                if self._offset(middle) == offset:
                    before = middle
                else:
                    after = middle
            out.append((start, after * US, offset))
            start, offset, probe = after * US, self._offset(after), after
        out.append((start, hi, offset))
        return out

    # chunks ------------------------------------------------------------------------

    def chunk_of(self, t: int) -> int:
        return (t - self.shift) // DAY

    def chunk_start(self, k: int) -> int:
        return self.shift + k * DAY

    def spans(self, k: int) -> tuple[Span, ...]:
        """Open intervals of chunk ``k``, sorted, disjoint and not touching."""
        cached = self._chunks.get(k)
        if cached is not None:
            return cached
        found: list[Span] = []
        special, week = self.special, self.week
        for start, end, offset in self._segments(k):
            # On this segment wall = utc + offset: each wall date it shows maps its periods back.
            for day in range((start + offset) // DAY, (end - 1 + offset) // DAY + 1):
                base = day * DAY - offset
                periods = special.get(day)
                for p_start, p_end in week[(day + _THURSDAY) % 7] if periods is None else periods:
                    a, b = base + p_start, base + p_end
                    if a < start:
                        a = start
                    if b > end:
                        b = end
                    if a < b:
                        found.append((a, b))
        merged: list[Span] = []
        for a, b in sorted(found):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        if len(self._chunks) >= MAX_CACHED:
            self._chunks.clear()
        result = self._chunks[k] = tuple(merged)
        return result

    def plain_week(self, k: int) -> bool:
        """Whether chunks k..k+6 hold exactly :attr:`weekly` of business time.

        True when the offset is the same all week and no special date falls in it: seven
        whole days at one offset show every time of the week exactly once on the wall clock.
        """
        cached = self._plain.get(k)
        if cached is not None:
            return cached
        lo = self.chunk_start(k)
        offset = self._edge(k)
        plain = all(self._edge(k + i) == offset for i in range(1, 8))
        if plain and self._special_days:
            first = (lo + offset) // DAY
            i = bisect_left(self._special_days, first)
            plain = i == len(self._special_days) or self._special_days[i] > (lo + WEEK - 1 + offset) // DAY
        if len(self._plain) >= MAX_CACHED:
            self._plain.clear()
        self._plain[k] = plain
        return plain

    @property
    def cached_chunks(self) -> int:
        """Chunks whose intervals were computed and kept: what a query had to build."""
        return len(self._chunks)

    # queries -----------------------------------------------------------------------

    def is_open(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.spans(self.chunk_of(t)))

    def next_opening(self, t: int) -> int:
        k = first = self.chunk_of(t)
        while k - first <= HORIZON_DAYS:
            for a, b in self.spans(k):
                if b > t:
                    return max(a, t)
            k += 1
        raise BeyondHorizon(f"the calendar does not open within {HORIZON_DAYS} days")

    def add(self, t: int, amount: int) -> int:
        """The earliest instant u ≥ t with ``between(t, u) == amount`` (amount ≥ 0)."""
        if amount <= 0:
            return t
        if self.always:
            return t + amount
        k = first = self.chunk_of(t)
        remaining = amount
        while k - first <= HORIZON_DAYS:
            # Skip a whole week only when the deadline lies beyond it: at exactly ``weekly``
            # it is the week's last closing, which the slow path finds.
            if remaining > self.weekly and self.chunk_start(k) >= t and self.plain_week(k):
                remaining -= self.weekly
                k += 7
                continue
            for a, b in self.spans(k):
                if b <= t:
                    continue
                a = max(a, t)
                if b - a >= remaining:
                    return a + remaining
                remaining -= b - a
            k += 1
        raise BeyondHorizon(f"the deadline is more than {HORIZON_DAYS} days ahead")

    def between(self, a: int, b: int) -> int:
        """Business microseconds in [a, b); 0 when b ≤ a."""
        if b <= a:
            return 0
        if self.always:
            return b - a
        total, k = 0, self.chunk_of(a)
        while self.chunk_start(k) < b:
            if self.chunk_start(k) >= a and self.chunk_start(k + 7) <= b and self.plain_week(k):
                total += self.weekly
                k += 7
                continue
            for x, y in self.spans(k):
                x, y = max(x, a), min(y, b)
                if x < y:
                    total += y - x
            k += 1
        return total
