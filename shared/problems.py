"""RFC 9457 problem details for every error a SupportPulse HTTP service returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    detail: str,
    *,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"https://supportpulse.dev/problems/{reason or title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body", "query", "path", "header"))


def install_problem_handlers(app: FastAPI) -> None:
    """Route FastAPI's own errors (404, 405, request validation) through problem details too."""

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):  # registered for it only
            raise TypeError(f"unexpected {type(exc).__name__}")
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):  # registered for it only
            raise TypeError(f"unexpected {type(exc).__name__}")
        errors = [
            {"field": _location(tuple(e.get("loc", ()))), "reason": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return problem(422, detail, reason="invalid", errors=errors)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
