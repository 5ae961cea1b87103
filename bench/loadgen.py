"""An open-loop HTTP/1.1 load generator at a fixed request rate (wrk2-style), in asyncio.

Requests are scheduled at ``start + i / rate`` whatever the server does, and each latency
is measured from its *scheduled* time, so a stalled server shows up in the percentiles
instead of slowing the sender down (no coordinated omission). It speaks just enough
HTTP/1.1 over keep-alive connections (Content-Length bodies) to stay far cheaper per
request than httpx; it still runs in Python on the same 2 cores as the server, so its
own CPU share is reported: near 100 % means the figures are client-bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.common import percentile

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _exchange(conn: Connection, request: bytes) -> int:
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
        if length:
            await reader.readexactly(length)
    return status


async def fixed_rate(
    port: int,
    rate: float,
    seconds: float,
    make_request: Callable[[int], bytes],
    connections: int = 64,
    request_timeout: float = 10.0,
) -> dict[str, Any]:
    """Send ``rate`` requests/s for ``seconds``; latencies in ms from each request's scheduled time."""
    loop = asyncio.get_running_loop()
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def one(i: int, scheduled: float) -> None:
        """One request, failed unless answered within ``request_timeout`` of its scheduled time
        (waiting for a free connection included), so an overloaded server cannot stretch the run."""
        nonlocal errors
        conn: Connection | None = None
        try:
            async with asyncio.timeout_at(loop.time() + scheduled + request_timeout - clock()):
                conn = await pool.get()
                status = await _exchange(conn, make_request(i))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            if conn is None:
                return
            conn[1].close()
            try:
                conn = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return
        else:
            latencies.append((clock() - scheduled) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait(conn)

    total = int(rate * seconds)
    tasks: list[asyncio.Task[None]] = []
    cpu0 = time.process_time()
    start = clock() + 0.01
    sent = 0
    while sent < total:
        # Every tick launches what is due, each stamped with its own scheduled time.
        due = min(total, int((clock() - start) * rate) + 1)
        while sent < due:
            tasks.append(loop.create_task(one(sent, start + sent / rate)))
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    wall = clock() - start
    cpu = time.process_time() - cpu0
    while not pool.empty():
        pool.get_nowait()[1].close()
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {
        "target_rate": rate,
        "seconds": round(wall, 2),
        "sent": total,
        "ok": ok,
        "non_2xx": sum(statuses.values()) - ok,
        "errors": errors,
        "achieved_rate": round(len(latencies) / wall),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p90_ms": round(percentile(latencies, 0.90), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "client_cpu_share": round(cpu / wall, 2),
    }


async def sequential(port: int, request: bytes, count: int, budget: float = 60.0) -> dict[str, Any]:
    """Latency of up to ``count`` requests one after another on one connection (no load), within
    ``budget`` seconds."""
    conn = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    deadline = time.perf_counter() + budget
    try:
        while len(latencies) < count and time.perf_counter() < deadline:
            started = time.perf_counter()
            await _exchange(conn, request)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        conn[1].close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }
