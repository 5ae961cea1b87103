"""Errors the API raises on purpose, rendered as RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from shared.problems import PROBLEM_JSON, install_problem_handlers, problem


class ApiError(Exception):
    """A client error; ``param`` names the query parameter at fault, when there is one."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        param: str | None = None,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.param = param
        self.reason = reason
        self.headers = headers


def invalid(param: str, message: str) -> ApiError:
    """422 naming the parameter, shaped like FastAPI's own validation errors (see shared.problems)."""
    return ApiError(422, f"{param}: {message}", param=param, reason="invalid")


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, reason="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> ApiError:
    return ApiError(403, detail, reason="forbidden")


def install_error_handlers(app: FastAPI) -> None:
    install_problem_handlers(app)

    async def api_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ApiError):  # registered for ApiError only
            raise TypeError(f"unexpected {type(exc).__name__}")
        extra: dict[str, Any] = {}
        if exc.param is not None:
            extra["errors"] = [{"field": exc.param, "reason": exc.detail.removeprefix(f"{exc.param}: ")}]
        return problem(exc.status, exc.detail, reason=exc.reason, headers=exc.headers, **extra)

    app.add_exception_handler(ApiError, api_error)


class Problem(BaseModel):
    """RFC 9457 problem details, served as application/problem+json."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://supportpulse.dev/problems/invalid",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "window: '2w' is not a duration like 5m, 1h or 7d (a number, then m, h or d)",
                    "errors": [{"field": "window", "reason": "'2w' is not a duration like 5m, 1h or 7d"}],
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    # On 422: [{field, reason}], field naming the parameter.
    errors: list[dict[str, str]] | None = None


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}}}


# For the OpenAPI document: the errors every authenticated endpoint may answer.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response("Missing or unknown bearer API key."),
    403: problem_response("The key may not read this tenant."),
    404: problem_response("No such tenant (only a key that may read every tenant gets this far)."),
    422: problem_response("A parameter is invalid; `errors[].field` names it."),
}
