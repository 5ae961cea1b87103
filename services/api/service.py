"""``python -m services.api.service``: run the API under uvicorn."""

from __future__ import annotations

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.observability import configure_logging


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_level, json=settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        # Keep the root logging set up above (plain or JSON) instead of uvicorn's own.
        log_config=None,
        log_level=settings.log_level.lower(),
        # Every request is counted in supportpulse_api_requests_total; a line each is noise.
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
