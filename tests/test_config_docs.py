"""docs/configuration.md is generated from the settings classes; `supportpulse config` shows them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from services.cli import app
from services.config_docs import markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_configuration_doc_is_up_to_date() -> None:
    assert DOC.read_text() == markdown(), "stale: supportpulse config --markdown > docs/configuration.md"


def test_config_command_masks_secrets_and_shows_overrides() -> None:
    env = {"SUPPORTPULSE_INGEST_PORT": "9999", "SUPPORTPULSE_DATABASE_URL": "postgresql://u:hunter2@db/x"}
    result = CliRunner().invoke(app, ["config"], env=env)
    assert result.exit_code == 0, result.output
    assert "9999" in result.output
    assert "hunter2" not in result.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for command in ("demo", "simulate", "replay", "follow-queue-log", "migrate", "stack", "config"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output
