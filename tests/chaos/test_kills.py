"""(a) SIGKILL the aggregator while the simulator streams through ingest, flushes included.

Every kill waits until the current life has stored progress, so each one interrupts real
work; every other kill waits for a flush transaction to be open (a writing transaction of
the aggregator in pg_stat_activity) and kills inside it. Postgres's own log then proves
how many kills cut a transaction short. The restarted aggregator (same static member id)
must resume from the offsets stored with the rows: at the end every KPI equals the
reference of what ingest accepted. SUPPORTPULSE_CHAOS_KILLS sets the count (5 in CI).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.chaos.harness import Pipeline, Sizes, wait_for
from tests.chaos.private_stack import PrivateStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A writing transaction of another session on our database: with the aggregator the only
# writer, that is a flush (offsets, buckets, conversation state) between BEGIN and COMMIT.
FLUSH_OPEN = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
"""

# What Postgres logs when a client disappears inside a transaction: between statements, or
# while a statement runs (the backend then fails to send its result). Either way it rolls back.
CUT_SHORT = ("unexpected EOF on client connection with an open transaction", "connection to client lost")


@dataclass(frozen=True)
class Kill:
    aimed_at_flush: bool
    flush_seen_open: bool
    stored: int
    log_end: int
    stream_running: bool


async def test_sigkills_at_random_moments_and_inside_flushes_lose_and_double_nothing(
    private_stack: PrivateStack, chaos_database: str, chaos_db: asyncpg.Connection, tmp_path: Path
) -> None:
    sizes = Sizes().slower()  # each life costs a process start: the stream must outlast them all
    rnd = random.Random(sizes.seed)
    kills: list[Kill] = []
    async with Pipeline("kills", private_stack.bootstrap, chaos_database, tmp_path, sizes) as p:
        aggregator = p.aggregator("k", supervised=False)  # this test restarts it itself
        await p.start_ingest()
        p.start_stream()

        async def total() -> int:
            return sum((await p.stored(chaos_db)).values())

        while len(kills) < sizes.kills:
            before = await total()

            async def progressed(before: int = before) -> bool:
                assert aggregator.proc is not None and aggregator.proc.poll() is None, aggregator.tail()
                return await total() > before

            await wait_for(progressed, 90, p.tails)
            aimed = len(kills) % 2 == 1
            seen = False
            if aimed:
                # Poll tightly: a flush of a few hundred rows is open for milliseconds.
                for _ in range(5000):
                    if await chaos_db.fetchval(FLUSH_OPEN):
                        seen = True
                        break
            else:
                await asyncio.sleep(rnd.uniform(0.0, 0.5))
            stored = await total()
            aggregator.kill()
            end = sum((await p.log_end()).values())
            kills.append(Kill(aimed, seen, stored, end, p.streaming))
            aggregator.start()
            p.mark(f"kill {len(kills)} ({'in a flush' if seen else 'random'})")
        stats = await p.finish_stream()
        result = await p.settle(chaos_db)
        in_kafka, missing = await p.acknowledged_in_kafka()
        # The same comparison from the command line, as an operator would run it.
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services", "verify", str(p.record)],
            env=p.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    database = chaos_database.rsplit("/", 1)[1]
    summary = result.summary()
    print(summary, p.timeline(), *kills, sep="\n")
    assert stats.errors == 0 and stats.accepted == stats.sent > 0, stats
    assert not missing, f"{len(missing)} acknowledged events are not in Kafka"
    assert result.ok, summary
    assert cli.returncode == 0 and "all equal" in cli.stdout, cli.stdout + cli.stderr
    assert len(kills) == sizes.kills
    # Every kill interrupted work: the simulator was still sending, or a backlog was unread.
    assert all(k.stream_running or k.stored < k.log_end for k in kills), kills
    assert [k.stored for k in kills] == sorted(k.stored for k in kills)  # progress kept across kills
    # Postgres saw clients vanish inside open transactions (idle in it, or mid-statement):
    # kills landed in flushes, and Postgres rolled those back.
    ours = [line for line in private_stack.postgres_log().splitlines() if f"@{database} " in line]
    cut = sum(any(sign in line for sign in CUT_SHORT) for line in ours)
    assert cut >= 1, "no kill landed inside a transaction"
    print(f"kills inside a transaction (Postgres log): {cut}; events in Kafka: {in_kafka}")
