"""Every route an app really serves, walked from ``app.routes`` rather than from its OpenAPI.

FastAPI keeps an included router as one entry of ``app.routes`` (an ``_IncludedRouter``
since 0.16x); the walk descends into ``original_router`` so no route hides there. Prefixes
are joined in case a router is ever included with one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute


def _walk(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix, route
            continue
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(inner.routes, prefix + (getattr(context, "prefix", "") or ""))


def route_table(app: FastAPI, *, documented_only: bool = True) -> dict[tuple[str, str], APIRoute]:
    """``(METHOD, path)`` -> route, for every API route (HEAD left out), documented ones by default."""
    return {
        (method, prefix + route.path): route
        for prefix, route in _walk(app.routes)
        if route.include_in_schema or not documented_only
        for method in route.methods
        if method != "HEAD"
    }


def api_routes(app: FastAPI, *, documented_only: bool = True) -> list[tuple[str, str]]:
    return sorted(route_table(app, documented_only=documented_only))
