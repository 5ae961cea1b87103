"""Start the ingest HTTP service (``supportpulse ingest``)."""

from __future__ import annotations

import uvicorn

from services.ingest.settings import IngestSettings
from shared.observability import configure_logging
from shared.tenants import load_tenants


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings.log_level, json=settings.log_json)
    load_tenants(settings.tenants_file)  # fail here, with the file's name, rather than in a worker
    uvicorn.run(
        "services.ingest.app:create_app",
        factory=True,
        host=settings.ingest_host,
        port=settings.ingest_port,
        workers=settings.ingest_workers,
        log_config=None,
        access_log=False,
        # The SIGTERM handling is uvicorn's: stop accepting, finish in-flight requests, run the lifespan exit.
        timeout_graceful_shutdown=15,
    )
