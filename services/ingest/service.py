"""Start the ingest HTTP service (``supportpulse ingest [--workers N]``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

import uvicorn

from services.ingest.metrics import MULTIPROC_ENV
from services.ingest.settings import IngestSettings
from shared.observability import configure_logging
from shared.tenants import load_tenants

if TYPE_CHECKING:
    from fastapi import FastAPI


def main(workers: int | None = None) -> None:
    """``workers``: overrides ``SUPPORTPULSE_INGEST_WORKERS``."""
    settings = IngestSettings()
    configure_logging(settings.log_level, json=settings.log_json)
    load_tenants(settings.tenants_file)  # fail here, with the file's name, rather than in a worker
    workers = workers or settings.ingest_workers
    metrics_dir = None
    if workers > 1 and MULTIPROC_ENV not in os.environ:
        # Each worker process counts in files here and /metrics sums them, so a scrape sees the
        # whole service whichever worker answers it. The workers inherit the variable.
        metrics_dir = tempfile.mkdtemp(prefix="supportpulse-ingest-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run(
            "services.ingest.service:worker_app",
            factory=True,
            host=settings.ingest_host,
            port=settings.ingest_port,
            # One process per worker, each with its own Kafka producer, all on the same port.
            workers=workers,
            log_config=None,
            access_log=False,
            # Nothing to advertise, and one header less per response.
            server_header=False,
            # The SIGTERM handling is uvicorn's: stop accepting, finish in-flight requests, run the
            # lifespan exit.
            timeout_graceful_shutdown=15,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app factory uvicorn calls in each worker process. A worker of its own (``workers`` > 1)
    is spawned, so it starts without the logging set-up ``main`` did: it is done here again."""
    from services.ingest.app import create_app

    settings = IngestSettings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
