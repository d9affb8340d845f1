"""What the query modules share."""

from __future__ import annotations

from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# Where a statement can run: in a session's transaction, or on an autocommit connection.
Executor = AsyncSession | AsyncConnection


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
