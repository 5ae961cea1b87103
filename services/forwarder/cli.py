"""``supportpulse follow-queue-log``: forward Asterisk queue_log lines to the ingest service.

Lines are posted in batches to ``/v1/webhooks/asterisk/{tenant}``; the position advances
only after ingest answered 202 (the lines are on Kafka), so a crash or an outage re-sends
at most the last batch, which the aggregator dedupes by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import httpx

from services.forwarder.follow import Follower

log = logging.getLogger(__name__)


class Forwarder:
    def __init__(
        self, follower: Follower, client: httpx.AsyncClient, tenant: str, token: str, poll: float = 0.5
    ) -> None:
        self.follower = follower
        self.client = client
        self.url = f"/v1/webhooks/asterisk/{tenant}"
        self.headers = {"content-type": "text/plain", "authorization": f"Bearer {token}"}
        self.poll = poll
        self.forwarded = 0

    async def step(self) -> int | None:
        """Forward what is new: lines delivered, 0 when idle, None when ingest could not take them."""
        lines, position = self.follower.read()
        if position is None:
            return 0
        if not lines:
            if position != self.follower.position:
                self.follower.commit(position)
            return 0
        body = ("\n".join(lines) + "\n").encode()
        try:
            response = await self.client.post(self.url, content=body, headers=self.headers)
        except httpx.HTTPError as exc:
            log.warning("ingest unreachable (%s); will retry", exc)
            return None
        if response.status_code == 202:
            self.follower.commit(position)
            self.forwarded += len(lines)
            return len(lines)
        if response.status_code in (429, 502, 503, 504):
            log.warning("ingest busy (%d); will retry", response.status_code)
            return None
        # A 4xx will not get better by retrying: say why, loudly, and stop rather than skip lines.
        raise RuntimeError(
            f"ingest refused the queue_log batch ({response.status_code}): {response.text[:500]}"
        )

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.poll
        while not stop.is_set():
            sent = await self.step()
            if sent:
                continue  # more may be waiting
            delay = self.poll if sent == 0 else min(delay * 2, 10.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


def run(path: Path, tenant: str, token: str, ingest_url: str, state_file: Path | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    follower = Follower(path, state_file or path.with_name(path.name + ".supportpulse-position"))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with httpx.AsyncClient(base_url=ingest_url, timeout=15) as client:
            forwarder = Forwarder(follower, client, tenant, token)
            log.info("following %s for tenant %s -> %s", path, tenant, ingest_url)
            await forwarder.run(stop)
            log.info("stopped after forwarding %d lines", forwarder.forwarded)

    asyncio.run(main())
