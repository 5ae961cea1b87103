"""The aggregator's HTTP side: ``/metrics``, ``/healthz`` and ``/readyz``, served from a thread.

The consumer loop runs on the event loop; probes must answer even while it is busy in a
long flush, so they are served by prometheus-client's WSGI app on a daemon thread and read
two timestamps the loop writes (a float assignment is atomic under the GIL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

StartResponse = Callable[..., Any]

PROBES = ("/healthz", "/readyz")
# Every path served (anything else gets the metrics, as prometheus-client's own server does).
PATHS = ("/metrics", *PROBES)


class Heartbeat:
    """What the loop reports: that it still polls, and that it has flushed to Postgres."""

    def __init__(self, stall_seconds: float = 120.0) -> None:
        self.stall_seconds = stall_seconds
        self.last_poll = time.monotonic()
        self.last_flush_ok: float | None = None
        self.assigned = False

    def alive(self) -> bool:
        return time.monotonic() - self.last_poll < self.stall_seconds

    def ready(self) -> bool:
        # Ready once it owns partitions (or is idle in the group) and its last flush succeeded.
        return self.alive() and self.assigned and self.last_flush_ok is not None


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the service's own logs


def _app(
    heartbeat: Heartbeat, registry: CollectorRegistry
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in PROBES:
            ok = heartbeat.alive() if path == "/healthz" else heartbeat.ready()
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")]
            )
            return [b'{"status": "ok"}' if ok else b'{"status": "unavailable"}']
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve(host: str, port: int, heartbeat: Heartbeat, registry: CollectorRegistry) -> Callable[[], None]:
    """Start serving on a daemon thread; returns the function that stops it and frees the port."""
    server: WSGIServer = make_server(host, port, _app(heartbeat, registry), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="aggregator-http", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
