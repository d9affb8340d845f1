"""Queries of the workers table: each running worker's heartbeat, and who is known to be dead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.models import Worker, utcnow
from app.repo.common import Executor, _rowcount, is_postgres

workers: sa.Table = Worker.__table__  # type: ignore[attr-defined]


# Heartbeats are written and judged by one clock: on PostgreSQL the database's, as the workers
# may run on several machines whose clocks need not agree; SQLite is a file on one machine,
# and its workers share that machine's clock.
def clock(session: Executor) -> sa.ColumnElement[Any]:
    if is_postgres(session):
        return sa.func.now()
    return sa.literal(utcnow(), workers.c.heartbeat_at.type)


def alive_since(session: Executor, *, dead_after: float) -> sa.ColumnElement[Any]:
    """The oldest heartbeat of a worker still counted as alive."""
    if is_postgres(session):
        return sa.func.now() - sa.literal(timedelta(seconds=dead_after), sa.Interval())
    return sa.literal(utcnow() - timedelta(seconds=dead_after), workers.c.heartbeat_at.type)


async def beat(session: Executor, *, worker_id: str) -> None:
    """Record that the worker is alive; registers it on the first beat, and again if its row
    was dropped meanwhile (by another worker that found it silent for too long)."""
    insert = (postgresql.insert if is_postgres(session) else sqlite.insert)(workers)
    now = clock(session)
    statement = insert.values(id=worker_id, started_at=now, heartbeat_at=now)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[workers.c.id],
            set_={"heartbeat_at": statement.excluded.heartbeat_at},
        )
    )


async def remove_worker(session: Executor, *, worker_id: str) -> None:
    """A worker stopping cleanly, its replies already ended, leaves nothing behind."""
    await session.execute(sa.delete(workers).where(workers.c.id == worker_id))


async def forget_dead_workers(session: Executor, *, dead_after: float) -> int:
    """Drop the rows of workers silent for too long; a reply of theirs counts as orphaned with
    or without the row (app/repo/replies.py), so this is only tidying up after crashes."""
    result = await session.execute(
        sa.delete(workers).where(
            workers.c.heartbeat_at < alive_since(session, dead_after=dead_after)
        )
    )
    return _rowcount(result)
