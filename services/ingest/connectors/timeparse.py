"""One parser for the zoo of vendor time formats, returning timezone-aware UTC datetimes.

Accepted (see ``parse_time``):

* ISO-8601 / RFC 3339 with ``Z`` or an offset, any fraction (``2021-07-23T18:02:48.000Z``);
* Chatwoot's older ``2020-03-03 13:05:57 UTC``;
* epoch seconds as int, float or numeric string; values above 1e11 are epoch *milliseconds*
  (1e11 seconds is the year 5138, so nothing plausible is lost);
* RFC 2822 (``Mon, 16 Aug 2010 03:45:01 +0000``), as in Twilio voice callbacks;
* naive strings (``2012-07-03 15:27:23.896208``, Asterisk realtime queue_log) only when the
  caller passes the timezone they are in; guessing UTC would shift a whole day of KPIs.

Anything outside [2000-01-01, now + 1 day] is rejected: a clock reset or a seconds/ms mix-up
would otherwise create buckets decades away that nobody ever looks at or cleans up.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Final

from services.ingest.connectors.base import InvalidPayload

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE: Final = timedelta(days=1)
MS_THRESHOLD: Final = 1e11

_NUMERIC: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_UTC_SUFFIX: Final = re.compile(r"\s+(?:UTC|GMT)\Z", re.IGNORECASE)
_MAX_TEXT: Final = 64


def parse_time(
    value: object,
    *,
    field: str = "occurred_at",
    tz: tzinfo | None = None,
    now: datetime | None = None,
) -> datetime:
    """Parse ``value`` into an aware UTC datetime or raise :class:`InvalidPayload`.

    ``field`` names the payload field in error messages; ``tz`` is the zone for naive
    strings; ``now`` is the reference for the upper bound (defaults to the wall clock).
    """
    if type(value) is str and value[-1:] == "Z" and value[:1].isdigit():
        # The usual RFC 3339 UTC form (once per event of every batch), straight to fromisoformat:
        # _parse would get there too (it is not numeric, has no " UTC" suffix and nothing to
        # strip), after two regexes. Anything unusual, out of range included, goes the general
        # way below, which words the error.
        iso = _iso(value)
        if iso is not None and iso.tzinfo is UTC:
            reference = datetime.now(UTC) if now is None else now
            if reference.tzinfo is not None and EARLIEST <= iso <= reference + MAX_FUTURE:
                return iso
    parsed = _parse(value, field=field, tz=tz)
    return check_range(parsed, field=field, now=now)


def check_range(value: datetime, *, field: str = "occurred_at", now: datetime | None = None) -> datetime:
    """Reject absurd times; naive ``value``/``now`` are taken as UTC."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    reference = datetime.now(UTC) if now is None else now
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    if not EARLIEST <= value <= reference + MAX_FUTURE:
        raise InvalidPayload(
            f"{field}: {value.isoformat()} is outside accepted range "
            f"[{EARLIEST.date().isoformat()}, now + 1 day]",
            reason="time_out_of_range",
        )
    return value


def _parse(value: object, *, field: str, tz: tzinfo | None) -> datetime:
    if isinstance(value, datetime):
        return _aware(value, field=field, tz=tz)
    # bool is an int subclass; True is not a time.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidPayload(f"{field}: expected a time string or epoch number, got {type(value).__name__}")
    if isinstance(value, int | float):
        return _from_epoch(value, field=field)
    text = value.strip()
    if not text:
        raise InvalidPayload(f"{field}: empty time")
    if _NUMERIC.fullmatch(text):
        return _from_epoch(float(text) if _is_fractional(text) or len(text) > 20 else int(text), field=field)
    utc_suffix = _UTC_SUFFIX.search(text)
    if utc_suffix:
        # Chatwoot < 2.x: "2020-03-03 13:05:57 UTC".
        naive = _iso(text[: utc_suffix.start()])
        if naive is not None and naive.tzinfo is None:
            return naive.replace(tzinfo=UTC)
    iso = _iso(text)
    if iso is not None:
        return _aware(iso, field=field, tz=tz)
    rfc = _rfc2822(text)
    if rfc is not None:
        return _aware(rfc, field=field, tz=tz)
    raise InvalidPayload(f"{field}: unrecognised time format {_clip(text)!r}")


def _is_fractional(text: str) -> bool:
    return any(c in text for c in ".eE")


def _from_epoch(number: int | float, *, field: str) -> datetime:
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidPayload(f"{field}: epoch must be finite")
    try:
        seconds = number / 1000 if abs(number) > MS_THRESHOLD else number
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidPayload(f"{field}: epoch {number!r} is outside accepted range") from None


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _rfc2822(text: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 5322 "-0000" means "UTC, local zone unknown"; the email parser returns it naive.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _aware(value: datetime, *, field: str, tz: tzinfo | None) -> datetime:
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(UTC)
    if tz is None:
        raise InvalidPayload(f"{field}: time {value.isoformat()!r} has no timezone and none is configured")
    # fold=0: in a DST overlap the earlier instant is taken; one hour a year is ambiguous by nature.
    return value.replace(tzinfo=tz).astimezone(UTC)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."
