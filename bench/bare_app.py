"""The reference for the ingest benchmark: a FastAPI endpoint that reads the body and does nothing.

Served by uvicorn exactly like the ingest service (same worker count, uvloop, httptools),
so the gap between the two is the ingest service's own work: auth, parsing, validation,
mapping and waiting for Kafka's acknowledgement.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()

ACCEPTED = b'{"accepted":1,"ignored":0,"ids":["x"]}'


@app.post("/v1/events", status_code=202)
async def post_events(request: Request) -> Response:
    await request.body()
    return Response(ACCEPTED, status_code=202, media_type="application/json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
