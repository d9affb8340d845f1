"""What the query modules share."""

from __future__ import annotations

from sqlalchemy.engine import CursorResult


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
