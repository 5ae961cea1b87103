"""The webhook routes answered straight from ASGI, ahead of FastAPI's routing and middleware.

A single-event webhook is small, so the framework's per-request work (route matching over
every route, the middleware stack, dependency solving, the Request and Response objects) was
most of its cost (bench/README.md, ingest). :class:`IngestApp` is still the FastAPI app: the
routes stay declared there, so the OpenAPI document, ``/docs``, the other routes, lifespan
and the problem+json error handlers are FastAPI's as before. Only a ``POST`` to one of the two
webhook paths is taken before FastAPI sees it, and given to the same handler the declared
routes call. Every answer of that handler is already a complete response (problem+json for
each refusal); an unexpected exception becomes a problem+json 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.datastructures import URL
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path
from starlette.types import Message, Receive, Scope, Send

from shared.problems import problem

log = logging.getLogger(__name__)

EVENTS_PATH: Final = "/v1/events"
WEBHOOK_PATH: Final = "/v1/webhooks/{connector}/{tenant}"
# Starlette's own pattern for the declared route, so both match exactly the same paths.
_WEBHOOK_REGEX: Final = compile_path(WEBHOOK_PATH)[0]
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]

# Distinct request URLs are few (the same routes called through the same host name); the memo
# is cleared when full, so a caller varying its Host header or query string only costs misses.
_MAX_URLS: Final = 1024
_urls: dict[tuple[Any, ...], str] = {}

# (connector, tenant or None, scope, receive) -> a problem response, or the 202's JSON body.
Handler = Callable[[str, str | None, Scope, Receive], Awaitable[Response | bytes]]


def accepted_response(answer: Response | bytes) -> Response:
    """The handler's answer as a Response (for the FastAPI-routed path)."""
    if isinstance(answer, bytes):
        return Response(answer, status_code=202, media_type="application/json")
    return answer


def request_url(scope: Scope) -> str:
    """``str(URL(scope=scope))``, as Starlette builds ``request.url`` (and Twilio signs it),
    memoised on everything it is built from (~5 µs saved per request)."""
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    server = scope.get("server")
    key = (
        scope.get("scheme", "http"),
        host,
        scope["path"],
        scope.get("query_string", b""),
        None if server is None else tuple(server),
    )
    url = _urls.get(key)
    if url is None:
        if len(_urls) >= _MAX_URLS:
            _urls.clear()
        url = _urls[key] = str(URL(scope=scope))
    return url


class IngestApp(FastAPI):
    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Under a root_path (mounted), paths are relative to it: FastAPI's routing handles that.
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path = scope["path"]
            if path == EVENTS_PATH:
                await self._serve("generic", None, scope, receive, send)
                return
            match = _WEBHOOK_REGEX.match(path)
            if match is not None:
                await self._serve(match["connector"], match["tenant"], scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve(
        self, connector: str, tenant: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            answer = await self._handler(connector, tenant, scope, receive)
            if isinstance(answer, bytes):
                headers = [*_JSON_HEADERS, (b"content-length", str(len(answer)).encode())]
                await tracked({"type": "http.response.start", "status": 202, "headers": headers})
                await send({"type": "http.response.body", "body": answer})
            else:
                await answer(scope, receive, tracked)
        except ClientDisconnect:
            return  # nobody to answer
        except Exception:
            log.exception("unexpected error answering POST %s", scope["path"])
            if not started:
                await problem(500, "unexpected error; see the service log")(scope, receive, send)
