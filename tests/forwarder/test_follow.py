"""The queue_log follower: new lines only, rotation and truncation survived, position kept on failure."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from services.forwarder.cli import Forwarder
from services.forwarder.follow import Follower

LINE = "1736940100|1736940100.{n}|support|NONE|ENTERQUEUE||+1555|1\n"


def write(path: Path, text: str, mode: str = "a") -> None:
    with path.open(mode) as fh:
        fh.write(text)


def test_reads_complete_lines_and_resumes_after_a_restart(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos"
    write(log, LINE.format(n=1) + LINE.format(n=2) + "1736940101|partial")
    follower = Follower(log, state)
    lines, pos = follower.read()
    assert lines == [LINE.format(n=1).strip(), LINE.format(n=2).strip()]
    assert pos is not None
    follower.commit(pos)
    write(log, "|line\n")
    again = Follower(log, state)  # a restart: the position comes from the state file
    lines, _ = again.read()
    assert lines == ["1736940101|partial|line"]


def test_rotation_drains_the_old_file_then_starts_the_new_one_from_the_top(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos"
    write(log, LINE.format(n=1))
    follower = Follower(log, state)
    _, pos = follower.read()
    assert pos is not None
    follower.commit(pos)
    write(log, LINE.format(n=2))  # written just before logrotate moved the file
    os.rename(log, tmp_path / "queue_log.1")
    write(log, LINE.format(n=3), mode="w")
    seen: list[str] = []
    for _ in range(3):
        lines, pos = follower.read()
        assert pos is not None
        follower.commit(pos)
        seen += lines
    assert seen == [LINE.format(n=2).strip(), LINE.format(n=3).strip()]


def test_truncation_in_place_starts_over(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos"
    write(log, LINE.format(n=1) + LINE.format(n=2))
    follower = Follower(log, state)
    _, pos = follower.read()
    assert pos is not None
    follower.commit(pos)
    write(log, LINE.format(n=3), mode="w")  # copytruncate-style rotation
    lines, _ = follower.read()
    assert lines == [LINE.format(n=3).strip()]


async def test_position_advances_only_after_ingest_acknowledged(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos"
    write(log, LINE.format(n=1) + LINE.format(n=2))
    answers = iter([503, 202])
    received: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tok"
        received.append(request.content)
        return httpx.Response(next(answers))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://ingest") as client:
        forwarder = Forwarder(Follower(log, state), client, "t1", "tok")
        assert await forwarder.step() is None  # 503: nothing committed
        assert not state.exists()
        assert await forwarder.step() == 2
        assert await forwarder.step() == 0  # nothing new
    assert received[0] == received[1]  # the same batch, re-sent
    assert Follower(log, state).read()[0] == []


async def test_a_refused_batch_stops_the_forwarder_instead_of_skipping(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos"
    write(log, "garbage\n")
    transport = httpx.MockTransport(lambda r: httpx.Response(422, text="line 1: too few fields"))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        with pytest.raises(RuntimeError, match="too few fields"):
            await Forwarder(Follower(log, state), client, "t1", "tok").step()
    assert not state.exists()
