"""``--record``: one JSON line per story started and per delivery finished.

Story lines carry the plan (what the story intends: bot, slow, rating, call outcome...),
delivery lines what was sent, what ingest answered and the canonical event types the
delivery was expected to become, so a later job can compare KPIs with the ground truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from services.simulator.story import Delivery, Story


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
    ) -> None:
        self._write(
            {
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
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
