"""Configuration read once, at the edge, into frozen objects.

Every service has one small settings class on :class:`CommonSettings`. All variables
share the ``SUPPORTPULSE_`` prefix; service-specific ones carry the service name
(``SUPPORTPULSE_INGEST_PORT``). Defaults point at the local stack started by
``supportpulse stack up``, so nothing needs configuring on a fresh machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.tenants import DEFAULT_FILE

LOCAL_DATABASE_URL = "postgresql+asyncpg://supportpulse:supportpulse@127.0.0.1:15432/supportpulse"
LOCAL_KAFKA_BOOTSTRAP = "127.0.0.1:19092"


class CommonSettings(BaseSettings):
    # hide_input_in_errors: a malformed value may be a secret (a database URL with its password).
    model_config = SettingsConfigDict(
        env_prefix="SUPPORTPULSE_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    kafka_bootstrap: str = LOCAL_KAFKA_BOOTSTRAP
    database_url: SecretStr = SecretStr(LOCAL_DATABASE_URL)
    events_topic: str = "supportpulse.events"
    raw_topic: str = "supportpulse.raw"
    deadletter_topic: str = "supportpulse.deadletter"
    # SLA breaches and at-risk transitions, for paging tools (see docs/sla.md).
    sla_topic: str = "supportpulse.sla"
    events_partitions: int = 6
    # Tenants, their connector secrets and the API keys (see shared/tenants.py).
    tenants_file: Path = DEFAULT_FILE
    # Minute buckets older than this are deleted (hour and day buckets stay); the aggregator
    # stops writing them and the API stops reading them at the same horizon.
    minute_retention_hours: float = Field(default=48.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # People paste libpq URLs; the services need the asyncpg dialect.
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        if not url.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql:// or postgresql+asyncpg:// URL")
        return SecretStr(url)

    @property
    def database_dsn(self) -> str:
        return self.database_url.get_secret_value()
