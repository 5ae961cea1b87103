"""The scenario generator: seeded, pure, one :class:`Story` per conversation or call.

Each story draws from its own ``random.Random`` seeded by (seed, kind, number), so story 41
is the same whatever came before it or how arrivals were timed. ``run_id`` (the run's
start time by default) goes into every vendor id that must not repeat across runs:
Chatwoot display and message ids, Twilio task and call SIDs, Asterisk uniqueids. Vendor
times are offsets from the story's start; the runner adds the wall clock when it sends.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Final

from services.simulator.calls import agent_break, asterisk_call, opening, twilio_call
from services.simulator.chats import chat_story
from services.simulator.story import CONNECTORS, KINDS, Delivery, Mix, Story

DEFAULT_MIX: Final = Mix()

__all__ = ["DEFAULT_MIX", "Delivery", "Mix", "Scenario", "Story"]


class Scenario:
    def __init__(
        self,
        seed: int,
        *,
        run_id: int,
        mix: Mix = DEFAULT_MIX,
        connectors: Iterable[str] = CONNECTORS,
    ) -> None:
        self.seed = seed
        self.run_id = run_id
        self.mix = mix
        self.connectors = frozenset(connectors)
        unknown = self.connectors - set(CONNECTORS)
        if unknown:
            raise ValueError(f"unknown connectors {sorted(unknown)}")
        kinds = [(k, w) for k, w in mix.kinds() if w > 0 and KINDS[k] in self.connectors]
        if not kinds:
            raise ValueError(f"no story kind left for connectors {sorted(self.connectors)}")
        self._kinds = [k for k, _ in kinds]
        self._weights = [w for _, w in kinds]

    def _rng(self, kind: str, number: int) -> random.Random:
        # str seeds are hashed with SHA-512 by random.seed: stable across processes.
        return random.Random(f"{self.seed}:{kind}:{number}")

    def story(self, number: int) -> Story:
        """Conversation or call number ``number`` (0, 1, 2, ...)."""
        rng = self._rng("story", number)
        kind = rng.choices(self._kinds, self._weights)[0]
        if kind == "twilio":
            return twilio_call(rng, number, self.run_id, self.mix)
        if kind == "asterisk":
            return asterisk_call(rng, number, self.run_id, self.mix)
        return chat_story(rng, number, self.run_id, kind, self.mix)

    def stories(self, count: int, start: int = 0) -> Iterator[Story]:
        return (self.story(n) for n in range(start, start + count))

    def agent_break(self, number: int) -> Story | None:
        """Break number ``number``; None when no configured vendor reports agent presence."""
        return agent_break(
            self._rng("break", number), number, self.run_id, self.connectors, seed_offset=self.seed
        )

    def opening(self) -> Story:
        """Agents logging in, sent once when a run starts."""
        return opening(self.run_id, self.connectors)

    def arrivals(self) -> random.Random:
        """The stream for arrival gaps, apart from story content so timing never changes a story."""
        return self._rng("arrivals", 0)
