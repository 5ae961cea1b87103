"""Deterministic event ids and bounded labels shared by the connectors.

Event ids are a hash of what identifies one happening (tenant, source and the vendor's own
keys), so a vendor redelivery maps to the same id and the aggregator's dedupe on id drops
it. Hashing keeps ids short and bounded whatever the vendor puts in its keys, and keeps
phone numbers or names that sometimes sit in those keys out of the id.
"""

from __future__ import annotations

import hashlib
from typing import Final

MAX_REASON_LEN: Final = 60
_SEP: Final = "\x1f"


def event_id(connector: str, *parts: str) -> str:
    """``<connector>:<32 hex>`` from the ordered ``parts`` (unit-separated, so parts never merge)."""
    # One encode and one update for all parts (the hot path of batch ingestion): the same bytes
    # as hashing each part followed by the separator.
    text = _SEP.join(parts) + _SEP if parts else ""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"{connector}:{digest.hexdigest()}"


def body_digest(body: bytes) -> str:
    """Stable digest of a raw body, for ids when the vendor sends no delivery id."""
    return hashlib.sha256(body).hexdigest()


def reason(kind: str, name: object) -> str:
    """A bounded metrics label such as ``unknown_event:typing_on`` (at most 60 chars, printable)."""
    text = "".join(c if c.isprintable() and not c.isspace() else "_" for c in str(name))
    return f"{kind}:{text}"[:MAX_REASON_LEN]
