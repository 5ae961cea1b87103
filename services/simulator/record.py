"""``--record``: one JSON line per run, per story started and per delivery finished.

The run line says how the traffic was made (seed, run id, tenant, mode). Story lines
carry the plan (what the story intends: bot, slow, rating, call outcome...), delivery
lines what was sent, what ingest answered and the canonical event types the delivery
was expected to become. In canonical mode an accepted delivery also carries the
canonical events themselves, with the ids ingest gave them: :func:`load_events` reads
them back for the reference computation (``reference.py``). Only deliveries answered
2xx carry events: a 202 is ingest's promise that Kafka has them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson

from services.simulator.story import Delivery, Story
from shared.events import Event


class Recorder:
    def __init__(self, path: Path | None) -> None:
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("wb")

    def _write(self, row: Mapping[str, Any]) -> None:
        if self._file is not None:
            # Buffered: one small write per delivery never blocks the event loop noticeably.
            self._file.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))

    def run(self, **fields: Any) -> None:
        self._write({"type": "run", **fields})

    def story(self, story: Story, origin: float) -> None:
        self._write({"type": "story", "story": story.number, "kind": story.kind, "origin": origin,
                     "plan": story.plan})  # fmt: skip

    def delivery(
        self,
        story: Story,
        delivery: Delivery,
        *,
        sent_at: float,
        status: int | None,
        attempts: int,
        outcome: str,
        summary: Mapping[str, Any],
        ids: Sequence[str] = (),
        error: str | None = None,
        events: Sequence[Event] = (),
    ) -> None:
        row: dict[str, Any] = {
            "type": "delivery",
            "story": story.number,
            "kind": story.kind,
            "connector": delivery.connector,
            "offset": delivery.offset,
            "sent_at": round(sent_at, 3),
            "status": status,
            "attempts": attempts,
            "outcome": outcome,
            "expect": list(delivery.expect),
            "ids": list(ids),
            "summary": dict(summary),
            "error": error,
        }
        if events:
            row["events"] = [msgspec.to_builtins(e) for e in events]
        self._write(row)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


def load_events(path: Path) -> list[Event]:
    """The canonical events a canonical-mode recording says ingest accepted, in sending order.

    Raises ``ValueError`` for a recording that holds none although deliveries were accepted
    (a vendor-mode run: the simulator does not know what the connectors made of them).
    """
    events: list[Event] = []
    accepted = 0
    for row in rows(path):
        if row.get("type") != "delivery" or row.get("outcome") != "accepted":
            continue
        accepted += 1
        events.extend(msgspec.convert(e, Event) for e in row.get("events", ()))
    if accepted and not events:
        raise ValueError(
            f"{path} holds no canonical events: record with --canonical (in vendor mode the "
            "simulator does not know the events the connectors made of its webhooks)"
        )
    return events


def load_run(path: Path) -> dict[str, Any]:
    """The run line (seed, run id, tenant, mode...); empty for recordings made before it existed."""
    for row in rows(path):
        if row.get("type") == "run":
            return row
    return {}
