"""Ruff's security rules (flake8-bandit, ``S``) are enabled for the project and pass.

* pyproject selects ``S`` and ignores no S rule project-wide except S101 (tests assert); outside
  tests, only the simulator and the benchmarks may use ``random`` (S311), which they use for
  traffic, not secrets;
* ``ruff check services shared`` (the project's configuration, S included) exits 0;
* ``ruff check --select S services shared`` (CLI ``--select`` drops the configured ignores, so
  not even an ``assert`` may hide there) exits 0 too.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[2]
RUFF: Final = Path(sys.executable).parent / "ruff"
# (file, the statement) of the S101 findings accepted: asserts that narrow types for mypy.


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def lint_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    return config


def test_pyproject_enables_the_security_rules() -> None:
    config = lint_config()
    assert "S" in config["select"]
    assert [rule for rule in config.get("ignore", []) if rule.startswith("S")] == ["S101"]
    for pattern, rules in config.get("per-file-ignores", {}).items():
        security = {rule for rule in rules if rule.startswith("S")}
        if pattern.startswith("tests/"):
            continue
        assert security <= {"S311"}, (pattern, security)
        assert pattern in ("bench/**", "services/simulator/**"), pattern


def test_project_lint_passes_with_the_security_rules() -> None:
    result = ruff("check", "services", "shared")
    assert result.returncode == 0, result.stdout + result.stderr


def test_select_s_literally_exits_0() -> None:
    result = ruff("check", "--select", "S", "services", "shared")
    assert result.returncode == 0, result.stdout
