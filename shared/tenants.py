"""Tenants, their secrets and the API keys that may read them: one YAML file.

The file is named by ``SUPPORTPULSE_TENANTS_FILE``; by default the development file
``deploy/local/tenants.yaml`` of this checkout, whose secrets are for the local stack only.
Connector sections are kept as plain mappings here and validated by the ingest service
against each connector's own config class, so ``shared`` knows nothing of vendors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "deploy" / "local" / "tenants.yaml"


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    timezone: str = "UTC"
    # Bearer token for the generic endpoint and the queue_log forwarder.
    ingest_token: SecretStr | None = None
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    key: SecretStr
    name: str
    # Tenants this key may read; "*" for all (an operator's key).
    tenants: list[str]
    # Whether the key may scrape /metrics when metrics are protected.
    metrics: bool = False
    # Whether the key may change its tenants' SLA calendars and policies (reading needs no more
    # than the tenant): dashboards get read-only keys, the people who own the SLA a writing one.
    sla_admin: bool = False


class TenantsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    tenants: dict[str, Tenant] = Field(default_factory=dict)
    api_keys: list[ApiKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _keys_name_known_tenants(self) -> TenantsConfig:
        for api_key in self.api_keys:
            unknown = [t for t in api_key.tenants if t != "*" and t not in self.tenants]
            if unknown:
                raise ValueError(f"api key {api_key.name!r} names unknown tenants {unknown}")
        return self

    def tenant(self, name: str) -> Tenant | None:
        return self.tenants.get(name)


def load_tenants(path: Path | None = None) -> TenantsConfig:
    """Load and validate the file; raises ``ValueError`` naming the file and the problem."""
    path = path or DEFAULT_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"cannot read tenants file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"tenants file {path} is not valid YAML: {exc}") from exc
    try:
        return TenantsConfig.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"tenants file {path}: {exc}") from exc
