"""What the query modules share."""

from __future__ import annotations

from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.pgfast import FastConnection, FastResult

# Where a statement can run: in a session's transaction, on an autocommit connection, or on
# the storefront's hot path on PostgreSQL, straight on asyncpg (app/pgfast.py).
Executor = AsyncSession | AsyncConnection | FastConnection
# Where a statement needs more of SQLAlchemy (executemany, ORM results).
SQLAlchemyExecutor = AsyncSession | AsyncConnection


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult | FastResult)
    return int(result.rowcount)


def is_postgres(session: Executor) -> bool:
    """Whether a statement runs on PostgreSQL: a few hot ones are written once per database."""
    bind = session.bind if isinstance(session, AsyncSession) else session
    return bind is not None and bind.dialect.name == "postgresql"
