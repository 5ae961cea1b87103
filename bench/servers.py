"""Servers under test as child processes, and wrk as the closed-loop load generator."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.common import ROOT, log, wait_http

LUA = Path(__file__).resolve().parent / "post.lua"


@asynccontextmanager
async def server(
    argv: Sequence[str], env: Mapping[str, str], port: int, ready_path: str, log_file: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start ``argv`` (its output to ``log_file``), wait for ``ready_path`` to answer 200, stop on exit."""
    with log_file.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            await wait_http(port, ready_path, within=90)
        except TimeoutError:
            raise RuntimeError(f"{argv[0]} did not become ready; see {log_file}") from None
        yield proc
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get (Debian package ``wrk``) when missing, as the stack does."""
    found = shutil.which("wrk")
    if found:
        return found
    from services.stack.apt import apt_install

    log("wrk is not installed: installing the Debian package (bench-only requirement)")
    apt_install(["wrk"])
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install wrk")
    return found


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE))
    return {
        "requests_per_second": round(float(rps.group(1))) if rps else 0,
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in socket.groups()) if socket else 0,
        "p50_ms": round(_ms(dist.get("50", "")), 2),
        "p99_ms": round(_ms(dist.get("99", "")), 2),
    }


async def wrk(
    url: str, seconds: float, connections: int, args: Sequence[str], threads: int = 1
) -> dict[str, Any]:
    argv = [
        ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
        "--timeout", "10s", "-s", str(LUA), url, "--", *args,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-500:]}")
    result = parse_wrk(text)
    result["connections"] = connections
    return result


def _py_spy_exe() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


INCLUSIVE_LAYERS = ("services/", "shared/", "aiokafka/")


def summarise_collapsed(text: str) -> dict[str, Any]:
    """py-spy's raw (collapsed) stacks → the frames with the most samples on top of the stack
    (self) and anywhere on it (inclusive), in % of all samples."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for frame in stack.split(";"):
            function, _, where = frame.partition(" (")
            path = where.split(":")[0]
            for anchor in ("site-packages/", "/work/main/", "/lib/python3.11/"):
                path = path.split(anchor)[-1]
            frames.append(f"{function} ({path})")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        # Inclusive time only for the layers worth reading: the project's code and aiokafka.
        for frame in set(frames):
            if any(f"({layer}" in frame for layer in INCLUSIVE_LAYERS):
                inclusive[frame] = inclusive.get(frame, 0) + count

    def top(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:25]
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in ranked]

    return {"samples": total, "self_percent": top(own), "inclusive_percent": top(inclusive)}


async def py_spy(pid: int, seconds: float, out: Path) -> dict[str, Any] | None:
    """Sample ``pid`` with py-spy (a bench-only tool: ``.venv/bin/pip install py-spy``)."""
    exe = _py_spy_exe()
    if exe is None:
        log("py-spy is not installed (.venv/bin/pip install py-spy): no profile")
        return None
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", "200",
        "--format", "raw", "--nonblocking", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await proc.wait()
    text = await asyncio.to_thread(_read, out)
    return summarise_collapsed(text) if text else None
