"""Alembic environment: metadata from app.models, URL from the settings (or the caller)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables)
from app.db import create_engine
from app.models.catalog import SQLITE_SEARCH_TABLES

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    from app.config import load_settings

    return load_settings().database_url


def _include(object_: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Objects the models mark PostgreSQL-only (info={"postgresql_only": True}) exist only
    there; elsewhere autogenerate and `alembic check` leave them out. SQLite's FTS5 tables
    exist only there and in no model."""
    if type_ == "table" and reflected and compare_to is None:
        # SQLite's FTS5 search tables are not models (app/models/catalog.py says why).
        if name and name.startswith(SQLITE_SEARCH_TABLES):
            return False
    info = getattr(object_, "info", None) or {}
    return not (info.get("postgresql_only") and context.get_bind().dialect.name != "postgresql")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
