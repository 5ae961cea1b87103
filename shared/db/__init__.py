"""Database access shared by the services: the engine factory and the schema."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def driver_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy URL, for code that talks to asyncpg directly."""
    return "postgresql://" + url.split("://", 1)[1]


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "supportpulse") -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )
