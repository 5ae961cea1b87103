"""API configuration (``SUPPORTPULSE_API_*``), read once at start-up."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.settings import CommonSettings
from shared.windows import WindowError, parse_duration


class ApiSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # When true, /metrics needs a bearer API key whose `metrics` flag is set.
    api_metrics_protected: bool = False
    # How often the background task re-reads the KPI gauges from Postgres.
    api_metrics_cache_seconds: float = Field(default=5.0, gt=0)
    # Per-agent series multiply cardinality; off by default, and capped when on.
    api_metrics_per_agent: bool = False
    api_metrics_max_agents: int = Field(default=50, ge=1)
    # NoDecode: the env var may be a plain comma-separated list ("5m,1h") as well as JSON.
    api_metrics_windows: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["5m", "1h", "24h"])
    api_db_pool_size: int = Field(default=5, ge=1)

    @field_validator("api_metrics_windows", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("api_metrics_windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one window is needed")
        for window in value:
            try:
                parse_duration(window)
            except WindowError as exc:
                raise ValueError(exc.message) from None
        return value

    @property
    def minute_retention(self) -> timedelta:
        return timedelta(hours=self.minute_retention_hours)
