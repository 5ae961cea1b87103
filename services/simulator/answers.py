"""What the ingest service answered: the outcome of a delivery and the parts of a response used."""

from __future__ import annotations

from typing import Final

import httpx
import orjson

RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})


def outcome(status: int | None, error: str | None) -> str:
    if status is not None and 200 <= status < 300 and error is None:
        return "accepted"
    if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
        return "rejected"
    return "failed"


def accepted(response: httpx.Response) -> tuple[int, int, list[str]]:
    """What ingest says it did with the delivery; its 202 body is ``{accepted, ignored, ids}``."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return 0, 0, []
    if not isinstance(body, dict):
        return 0, 0, []
    count, ignored, ids = body.get("accepted"), body.get("ignored"), body.get("ids")
    return (
        count if isinstance(count, int) else 0,
        ignored if isinstance(ignored, int) else 0,
        [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else [],
    )


def detail(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200]
    found = body.get("detail") if isinstance(body, dict) else None
    return str(found)[:200] if found else response.text[:200]


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
