"""The database engine and sessions: the one place that knows how we connect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.pgfast import FastPool, connection_lost

if TYPE_CHECKING:
    from app.repo.common import Executor


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # A driver error's text would otherwise carry the statement's values: a shopper's message.
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        # No pre-ping: it costs a round trip on every checkout. A connection that died with a
        # database restart fails one request (503), and SQLAlchemy then drops the whole pool.
        kwargs.setdefault("pool_recycle", 1800)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "handle_error", _mark_lost_connection)
    return engine


def database_unreachable(error: BaseException) -> bool:
    """Whether an error from a query means the database is out of reach (a 503), not a bug."""
    if isinstance(error, OperationalError | InterfaceError | ConnectionError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _mark_lost_connection(context: ExceptionContext) -> None:
    if not context.is_disconnect and connection_lost(context.original_exception):
        # Discards this connection and every other pooled one, and flags the error
        # `connection_invalidated`, which the API answers with 503 `database_unavailable`.
        context.is_disconnect = True


class Database:
    """Owns the engine and hands out its connections, three ways: an ORM session and a Core
    transaction (both commit on success, roll back on error), and a connection where each
    statement commits on its own."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.postgres = self.engine.dialect.name == "postgresql"
        self.fast = FastPool(self.engine) if self.postgres else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a transaction: cheaper than a session where no ORM is used."""
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    def connection(self) -> AbstractAsyncContextManager[Executor]:
        """A connection on which every statement commits on its own, on both databases: the
        storefront's reads and writes, each of which is one statement or makes its own
        transaction (app/repo/chat.py's turn on SQLite). It spares the BEGIN and COMMIT
        round trips. On PostgreSQL it is the pooled connection's asyncpg (app/pgfast.py)."""
        if self.fast is not None:
            return self.fast.connection()
        return self._autocommit()

    async def dispose(self) -> None:
        if self.fast is not None:
            await self.fast.close()
        await self.engine.dispose()
