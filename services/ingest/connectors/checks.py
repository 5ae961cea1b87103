"""Last check on every event a connector emits, so nothing unusable reaches Kafka.

``msgspec`` enforces the :class:`Event` field constraints (id lengths, aware datetimes,
bounded labels) only when decoding, not when a Struct is built in code; the aggregator
decodes. An over-long vendor queue name would therefore pass here and poison the topic.
Round-tripping through the wire format applies exactly the aggregator's checks. (The generic
connector does not need this: it decodes the sender's JSON into the model with those checks
once, see ``generic.py``.)
"""

from __future__ import annotations

import msgspec

from services.ingest.connectors.base import InvalidPayload
from services.ingest.connectors.payload import join
from shared.events import Event, decode, encode, problems


def checked(event: Event, *, where: str = "") -> Event:
    """Return ``event`` decoded back from its wire form, or raise :class:`InvalidPayload`.

    ``where`` prefixes messages (``[3].`` in a batch, ``line 7: `` for a log line).
    """
    encoded = encode(event)
    try:
        wire = decode(encoded)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"{where}{validation_message(exc)}") from None
    found = problems(wire, encoded=encoded)
    if found:
        raise InvalidPayload(f"{where}{found[0]}")
    return wire


def validation_message(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's ``Expected `str`, got `int` - at `$.tenant``` into ``tenant: Expected str, got int``."""
    reason, sep, path = str(exc).partition(" - at `$")
    path = path.rstrip("`").lstrip(".") if sep else ""
    missing = "Object missing required field `"
    if reason.startswith(missing):
        return f"{join(path, reason[len(missing) :].rstrip('`'))}: required"
    return f"{path}: {_plain(reason)}" if path else _plain(reason)


def _plain(text: str) -> str:
    return text.replace("`", "")[:200]
