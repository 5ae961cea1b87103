"""Following a growing log file the way ``tail -F`` does, with a position that survives restarts.

The position is (device, inode, offset) of the last complete line forwarded. On start the
follower resumes there if the file is the same one. If the file was rotated (a new inode at
the path), it first drains the rest of the old file when it can still find it beside the
new one (``queue_log.1`` after logrotate), then starts the new one from the top; if the
file shrank (truncated in place) it starts over.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Position:
    device: int
    inode: int
    offset: int


class Follower:
    def __init__(self, path: Path, state_file: Path, max_bytes: int = 512 * 1024) -> None:
        self.path = path
        self.state_file = state_file
        self.max_bytes = max_bytes
        self.position = self._load()

    def _load(self) -> Position | None:
        try:
            return Position(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def commit(self, position: Position) -> None:
        """Remember that everything before ``position`` was delivered (atomically, via rename)."""
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(position)))
        os.replace(tmp, self.state_file)
        self.position = position

    def _rotated_away(self, current_inode: int) -> Path | None:
        """The old file of our position, if it was renamed beside the new one and has unread lines."""
        pos = self.position
        if pos is None or pos.inode == current_inode:
            return None
        for candidate in self.path.parent.glob(self.path.name + "*"):
            try:
                st = candidate.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (pos.device, pos.inode) and st.st_size > pos.offset:
                return candidate
        return None

    def read(self) -> tuple[list[str], Position | None]:
        """Complete new lines and the position after them; nothing is committed here."""
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = -1
        path = self._rotated_away(current) or self.path
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return [], None
        try:
            st = os.fstat(fd)
            start = 0
            pos = self.position
            if pos is not None and (pos.device, pos.inode) == (st.st_dev, st.st_ino):
                start = pos.offset if pos.offset <= st.st_size else 0  # shrank: truncated in place
            os.lseek(fd, start, os.SEEK_SET)
            data = os.read(fd, self.max_bytes)
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0:
            return [], Position(st.st_dev, st.st_ino, start)  # no complete line yet
        chunk = data[: end + 1]
        lines = [line for line in chunk.decode("utf-8", errors="replace").splitlines() if line.strip()]
        return lines, Position(st.st_dev, st.st_ino, start + len(chunk))
