"""Where the local stack keeps its state: one directory, `.stack/` at the repo root by default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STACK_DIR_ENV = "SUPPORTPULSE_STACK_DIR"

# services/stack/paths.py -> services/stack -> services -> repo root
REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"


@dataclass(frozen=True)
class StackPaths:
    """All paths derived from the stack root; nothing is created until `ensure()` is called."""

    root: Path

    @classmethod
    def from_env(cls) -> StackPaths:
        override = os.environ.get(STACK_DIR_ENV)
        root = Path(override).expanduser() if override else REPO_ROOT / ".stack"
        return cls(root=root.resolve())

    @property
    def is_default_root(self) -> bool:
        return self.root == (REPO_ROOT / ".stack").resolve()

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def lock_file(self) -> Path:
        return self.run / "stack.lock"

    def component_dir(self, component: str) -> Path:
        return self.root / component

    def data_dir(self, component: str) -> Path:
        return self.component_dir(component) / "data"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def ensure(self) -> None:
        for directory in (self.root, self.logs, self.run):
            directory.mkdir(parents=True, exist_ok=True)
