"""What every benchmark shares: names, throwaway databases and topics, memory readings, output."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.db import driver_dsn
from shared.db.scratch import scratch_database
from shared.kafka import delete_topics as shared_delete_topics
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
VENV_BIN = Path(sys.executable).parent


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def settings() -> CommonSettings:
    return CommonSettings()


plain_dsn = driver_dsn


# --- throwaway resources -----------------------------------------------------------------


@asynccontextmanager
async def temp_database(migrate: bool = True) -> AsyncIterator[str]:
    """A fresh database (SQLAlchemy URL) at the latest migration; dropped on exit."""
    async with scratch_database(settings().database_dsn, "supportpulse_bench_", migrate=migrate) as url:
        yield url


@asynccontextmanager
async def temp_topics(names: Sequence[str], partitions: int = 6) -> AsyncIterator[None]:
    """Topics created now (names that exist already are left alone) and deleted on exit."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings().kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names if n not in existing])
        yield
    finally:
        try:
            existing = set(await admin.list_topics())
            doomed = [n for n in names if n in existing]
            if doomed:
                await admin.delete_topics(doomed)
        finally:
            await admin.close()


async def delete_topics(names: Iterable[str]) -> None:
    await shared_delete_topics(settings().kafka_bootstrap, list(names))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_http(port: int, path: str, within: float = 60.0) -> None:
    """Until GET path answers 200 on 127.0.0.1:port."""
    deadline = time.monotonic() + within
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"127.0.0.1:{port}{path} did not answer 200 within {within:.0f}s")
        await asyncio.sleep(0.2)


# --- memory ------------------------------------------------------------------------------


def proc_status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM); 0 where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- statistics and output ---------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..1)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(name: str, figures: dict[str, Any], quick: bool) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    doc = {
        "benchmark": name,
        "quick": quick,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", "bench", *sys.argv[1:]]),
        "machine": machine(),
        "figures": figures,
    }
    text = json.dumps(doc, indent=2, default=str)
    path = RESULTS / f"{name}-{stamp}{'-quick' if quick else ''}.json"
    path.write_text(text)
    (RESULTS / f"{name}{'-quick' if quick else ''}.json").write_text(text)
    return path


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> None:
    cells = [[fmt(c) for c in row] for row in ([header] if header else []) + list(rows)]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(len(r) for r in cells))]
    print(f"\n{title}")
    print("-" * (sum(widths) + 3 * (len(widths) - 1)))
    for n, row in enumerate(cells):
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        print(" | ".join(padded))
        if header and n == 0:
            print("-" * (sum(widths) + 3 * (len(widths) - 1)))


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)
