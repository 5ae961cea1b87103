"""ApiSettings: defaults and the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.api.settings import ApiSettings
from shared.tenants import DEFAULT_FILE


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUPPORTPULSE_API_METRICS_WINDOWS", "SUPPORTPULSE_API_PORT", "SUPPORTPULSE_TENANTS_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = ApiSettings()
    assert settings.tenants_file == DEFAULT_FILE
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8080)
    assert settings.api_metrics_protected is False
    assert settings.api_metrics_cache_seconds == 5
    assert settings.api_metrics_per_agent is False
    assert settings.api_metrics_max_agents == 50
    assert settings.api_metrics_windows == ["5m", "1h", "24h"]


@pytest.mark.parametrize(("raw", "parsed"), [("5m, 1h", ["5m", "1h"]), ('["15m","7d"]', ["15m", "7d"])])
def test_windows_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, parsed: list[str]) -> None:
    monkeypatch.setenv("SUPPORTPULSE_API_METRICS_WINDOWS", raw)
    monkeypatch.setenv("SUPPORTPULSE_API_METRICS_PROTECTED", "true")
    settings = ApiSettings()
    assert settings.api_metrics_windows == parsed
    assert settings.api_metrics_protected is True


@pytest.mark.parametrize("raw", ["2w", "", "5m,soon"])
def test_bad_windows_are_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SUPPORTPULSE_API_METRICS_WINDOWS", raw)
    with pytest.raises(ValidationError, match="api_metrics_windows"):
        ApiSettings()
