"""The storefront's hot statements on PostgreSQL, run on the pooled connection's asyncpg.

Profiled in bench/ (turn throughput): SQLAlchemy's execution machinery cost more CPU than
asyncpg itself, about 0.15 ms a statement. So on PostgreSQL a turn's writes (each one
statement, committing on its own), its final write and the storefront's reads run the *same*
prebuilt statements of app/repo, compiled once by SQLAlchemy for PostgreSQL, straight on the
asyncpg connection that SQLAlchemy's pool lends us. Nothing is written twice: the repo
functions take a FastConnection wherever they take an AsyncConnection, and the errors come
out as the SQLAlchemy errors the rest of the app handles (IntegrityError for a lost race, a
503 for a lost database, which also drops the pool).
SQLite keeps SQLAlchemy all the way.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sa_types
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

_COMPILED_LIMIT = 256


class FastResult:
    """The part of SQLAlchemy's Result the repo functions use."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            if not self._rows:
                raise sa_exc.NoResultFound("No row was found when one was required")
            raise sa_exc.MultipleResultsFound("Multiple rows were found when one was required")
        return self._rows[0]


class _Compiled:
    __slots__ = ("constants", "keys", "processors", "returns_rows", "row", "sql", "statement")

    def __init__(
        self,
        statement: ClauseElement,
        compiled: SQLCompiler,
        keys: Sequence[str],
        constants: dict[str, Any],
    ) -> None:
        self.statement = statement  # held, so that its id is not reused while cached
        self.sql = compiled.string
        self.keys = tuple(keys)
        self.constants = constants  # values bound inside the statement, not named in params
        # The bound values' type processing, as SQLAlchemy's own execution applies it (a
        # Boolean's today; a JSON column's would be its serialisation).
        binds = compiled._bind_processors
        self.processors: tuple[tuple[int, Callable[[Any], Any]], ...] = tuple(
            (position, process)
            for position, key in enumerate(self.keys)
            if callable(process := binds.get(key))
        )
        self.returns_rows = _returns_rows(statement, compiled)
        self.row: Any = None  # the row type, made from the first result's columns


# Result types whose Python value SQLAlchemy makes out of the driver's, where asyncpg's own
# would differ: a statement that reads one is not for this path (refused, naming it).
_PROCESSED_RESULTS = (sa_types.TypeDecorator, sa_types.JSON, sa_types.Enum, sa_types.PickleType,
                      sa_types.ARRAY, sa_types.Interval)  # fmt: skip


def _check_results(compiled: SQLCompiler) -> None:
    for column in compiled._result_columns:
        kind = column[3]
        processed = isinstance(kind, _PROCESSED_RESULTS) or (
            isinstance(kind, sa_types.Numeric)
            and not isinstance(kind, sa_types.Float)
            and not kind.asdecimal
        )
        if processed:
            raise ValueError(
                f"{column[1]} ({kind!r}) is made by SQLAlchemy's result processing, which "
                "this path does not run: read it through SQLAlchemy"
            )


def _returns_rows(statement: ClauseElement, compiled: SQLCompiler) -> bool:
    if isinstance(statement, UpdateBase):
        return bool(compiled.effective_returning)
    head = compiled.string.lstrip().upper()
    return head.startswith(("SELECT", "WITH", "VALUES")) or " RETURNING " in head


def connection_lost(error: BaseException) -> bool:
    """Whether a driver error means the connection or the server is gone (or not yet back).

    SQLAlchemy's asyncpg dialect only calls a connection lost once its socket is closed. But a
    server shutting down sends its FATAL `admin_shutdown` before it closes the socket, one
    shutting down or starting up refuses new connections with `cannot_connect_now`, and a
    restart can leave a pooled connection's protocol mid-operation (asyncpg's "cannot switch
    to state ...; another operation is in progress"). Without this, those were 500s, and the
    broken connection went back to the pool to fail the next request too.
    """
    driver = getattr(error, "orig", None) or error
    sqlstate = getattr(driver, "sqlstate", None)
    # Class 08: connection exception; 57P: the server shutting down, starting up, crashed.
    if isinstance(sqlstate, str) and sqlstate.startswith(("08", "57P")):
        return True
    # A protocol left mid-operation by the connection lost under it: it cannot be used again.
    return isinstance(driver, asyncpg.exceptions.InternalClientError)


def _lost_connection(error: BaseException) -> bool:
    """connection_lost, for an error straight from asyncpg (not one SQLAlchemy has judged)."""
    return isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError) or connection_lost(
        error
    )


class FastConnection:
    """An asyncpg connection that takes SQLAlchemy Core statements, as AsyncConnection does."""

    _compiled: OrderedDict[tuple[int, tuple[str, ...]], _Compiled] = OrderedDict()

    def __init__(self, driver: asyncpg.Connection, dialect: Dialect, engine: AsyncEngine):
        self.driver = driver
        self.dialect = dialect
        self.engine = engine
        self.lost = False

    def _compile(self, statement: ClauseElement, params: Mapping[str, Any] | None) -> _Compiled:
        keys = tuple(params) if params else ()
        cache_key = (id(statement), keys)
        found = self._compiled.get(cache_key)
        if found is not None and found.statement is statement:
            try:
                self._compiled.move_to_end(cache_key)
            except KeyError:  # tests run servers on threads of their own: another evicted it
                pass
            return found
        compiled = statement.compile(dialect=self.dialect, column_keys=list(keys) or None)
        assert isinstance(compiled, SQLCompiler)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError(f"an IN list is expanded per call; not for this path: {compiled}")
        # Raises, naming it, if a parameter has no value.
        everything = compiled.construct_params(dict(params or {})) or {}
        constants = {k: v for k, v in everything.items() if k not in keys}
        _check_results(compiled)
        entry = _Compiled(statement, compiled, compiled.positiontup or (), constants)
        # Mostly the prebuilt statements of app/repo; the few built per call just pass through.
        self._compiled[cache_key] = entry
        if len(self._compiled) > _COMPILED_LIMIT:
            with contextlib.suppress(KeyError):
                self._compiled.popitem(last=False)
        return entry

    async def execute(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> FastResult:
        compiled = self._compile(statement, params)
        constants = compiled.constants
        values = ({**constants, **params} if constants else params) if params else constants
        args = [values[k] for k in compiled.keys]
        for position, process in compiled.processors:
            args[position] = process(args[position])
        try:
            if compiled.returns_rows:
                records = await self.driver.fetch(compiled.sql, *args)
            else:
                status = await self.driver.execute(compiled.sql, *args)
                count = status.rsplit(" ", 1)[-1]
                return FastResult([], int(count) if count.isdigit() else -1)
        except Exception as exc:
            raise self.translate(exc, compiled.sql) from exc
        if not records:
            return FastResult([], 0)
        if compiled.row is None:
            compiled.row = namedtuple("Row", list(records[0].keys()))  # type: ignore[misc]
        row = compiled.row
        return FastResult([row(*record) for record in records], len(records))

    def translate(self, error: Exception, sql: str) -> Exception:
        """asyncpg's error as the SQLAlchemy error the rest of the app expects."""
        if _lost_connection(error):
            self.lost = True
            return sa_exc.OperationalError(sql, None, error, connection_invalidated=True)
        if isinstance(error, asyncpg.IntegrityConstraintViolationError):
            return sa_exc.IntegrityError(sql, None, error)
        if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
            return sa_exc.DBAPIError(sql, None, error)
        return error


class FastPool:
    """Connections of SQLAlchemy's pool, kept checked out between uses.

    A checkout from SQLAlchemy's async pool and its return take three greenlet switches, about
    0.11 ms of CPU (bench/), and a turn takes two connections. So up to `size` idle connections
    wait here instead, ready at no cost. Each goes back to SQLAlchemy's pool `hold` seconds
    after it left it, so pool_recycle and dispose still reach it; when one is found lost, every
    idle one is dropped with SQLAlchemy's pool, as SQLAlchemy itself does on a disconnect.
    """

    def __init__(self, engine: AsyncEngine, *, size: int = 8, hold: float = 60.0) -> None:
        self.engine = engine
        self.size = size
        self.hold = hold
        self._idle: list[_Held] = []
        self._generation = 0  # bumped when the database was lost: older connections go

    @property
    def idle(self) -> int:
        """Connections waiting here for their next use (checked out of SQLAlchemy's pool)."""
        return len(self._idle)

    async def _take(self) -> _Held:
        now = time.monotonic()
        while self._idle:
            held = self._idle.pop()
            if held.usable(self._generation) and now - held.since < self.hold:
                return held
            await self._release(held)
        connection = await self.engine.connect()
        try:
            return _Held(connection, await _driver(connection), now, self._generation)
        except BaseException:
            await connection.close()
            raise

    async def _release(self, held: _Held) -> None:
        """Back to SQLAlchemy's pool; or closed, if it belongs to a pool dropped since or is
        left inside a transaction (SQLAlchemy's reset would not know to roll back ours)."""
        if held.generation == self._generation and not held.driver.is_in_transaction():
            await held.connection.close()
        else:
            await held.connection.invalidate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[FastConnection]:
        """A connection's asyncpg, each statement committing on its own; a lost one drops
        the pool."""
        held = await self._take()
        fast = FastConnection(held.driver, held.connection.dialect, self.engine)
        clean = False
        try:
            yield fast
            clean = True
        except Exception:
            # The database's refusal or the route's error leaves the connection ready for
            # the next use; a cancellation may have left a query half-way, and does not.
            clean = True
            raise
        finally:
            if fast.lost:
                await self._lost(held)
            elif clean and held.usable(self._generation) and len(self._idle) < self.size:
                self._idle.append(held)
            else:
                await self._release(held)

    async def _lost(self, held: _Held) -> None:
        # This connection and every pooled one opened before the database went away go.
        self._generation += 1
        idle, self._idle = self._idle, []
        await held.connection.invalidate()
        for other in idle:
            await other.connection.invalidate()
        await self.engine.dispose(close=False)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for held in idle:
            await self._release(held)


class _Held:
    __slots__ = ("connection", "driver", "generation", "since")

    def __init__(
        self, connection: AsyncConnection, driver: asyncpg.Connection, since: float, generation: int
    ) -> None:
        self.connection = connection
        self.driver = driver
        self.since = since
        self.generation = generation

    def usable(self, generation: int) -> bool:
        return (
            self.generation == generation
            and not self.driver.is_closed()
            and not self.driver.is_in_transaction()
        )


async def _driver(connection: AsyncConnection) -> asyncpg.Connection:
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver
