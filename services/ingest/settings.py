"""Ingest configuration (``SUPPORTPULSE_INGEST_*``), read once at start-up."""

from __future__ import annotations

from pydantic import Field

from shared.kafka import MAX_RAW_MESSAGE_BYTES
from shared.settings import CommonSettings

# A raw record holds the body base64-encoded (4/3) plus its envelope (headers, URL).
_RAW_ENVELOPE_BYTES = 64 * 1024
MAX_BODY_BYTES = (MAX_RAW_MESSAGE_BYTES - _RAW_ENVELOPE_BYTES) * 3 // 4


class IngestSettings(CommonSettings):
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8081
    ingest_workers: int = Field(default=1, ge=1)
    # A request larger than this is refused with 413 before it is read.
    # At most MAX_BODY_BYTES (3 MiB): the raw copy of every accepted body must fit one Kafka record.
    ingest_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=MAX_BODY_BYTES)
    ingest_max_batch_events: int = Field(default=1000, ge=1)
    # How long a request waits for Kafka's acknowledgement before answering 503.
    ingest_produce_timeout_seconds: float = Field(default=10.0, gt=0)
    # 0: aiokafka keeps one produce request in flight per broker, and records batch up behind it
    # anyway; lingering only added its milliseconds to every answer (bench/README.md, ingest).
    ingest_linger_ms: int = Field(default=0, ge=0)
