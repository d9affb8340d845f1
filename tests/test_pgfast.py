"""The storefront's hot path on PostgreSQL runs on asyncpg itself (app/pgfast.py): the same
statements give the same rows as through SQLAlchemy, and its errors are SQLAlchemy's."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from app import repo
from app.db import Database
from app.pgfast import FastConnection
from app.repo.chat import messages
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.factories import make_shop, new_id, shop_id_of


@pytest.fixture
def pg(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite runs every statement through SQLAlchemy")
    return database_url


async def _shop_id(db: Database) -> int:
    return await shop_id_of(db, await make_shop(db))


async def test_a_turn_saved_on_asyncpg_reads_back_the_same_through_sqlalchemy(pg: str) -> None:
    db = Database(pg)
    try:
        shop_id = await _shop_id(db)
        session_id = new_id()
        async with db.connection() as fast:
            assert isinstance(fast, FastConnection)
            turn = await repo.open_turn(
                fast,
                shop_id=shop_id,
                session_id=session_id,
                customer_id=None,
                content="hé there",
                client_message_id=None,
            )
        conversation, user, reply = turn.conversation, turn.user, turn.reply
        assert turn.created and conversation.id is not None
        assert user is not None and reply is not None
        again, created = await _open(db, shop_id, session_id)
        assert not created and again.id == conversation.id
        async with db.transaction() as connection:
            rows = await repo.recent_context(
                connection, conversation_id=conversation.id, before_id=reply.id or 0
            )
        assert [(m.id, m.content, m.created_at) for m in rows] == [
            (user.id, "hé there", user.created_at)
        ]
        async with db.session() as session:
            stored = await repo.get_message_by_id(session, message_id=reply.id or 0)
        assert stored is not None
        assert (stored.public_id, stored.status, stored.reply_to_id, stored.created_at) == (
            reply.public_id,
            "streaming",
            user.id,
            reply.created_at,
        )
    finally:
        await db.dispose()


async def _open(db: Database, shop_id: int, session_id: str):  # type: ignore[no-untyped-def]
    async with db.transaction() as connection:
        return await repo.open_conversation(
            connection, shop_id=shop_id, session_id=session_id, customer_id=None
        )


async def test_statements_it_cannot_run_faithfully_are_refused_before_the_database(
    pg: str,
) -> None:
    db = Database(pg)
    try:
        async with db.connection() as fast:
            assert isinstance(fast, FastConnection)
            with pytest.raises(sa_exc.InvalidRequestError, match="conversation_id"):
                await fast.execute(
                    sa.select(messages.c.id).where(
                        messages.c.conversation_id == sa.bindparam("conversation_id")
                    ),
                    {},
                )
            with pytest.raises(ValueError, match="IN list"):
                await fast.execute(sa.select(messages.c.id).where(messages.c.id.in_([1, 2])))
            nothing = await fast.execute(sa.select(messages.c.id).where(messages.c.id == -1))
            assert nothing.first() is None and nothing.all() == []
            with pytest.raises(sa_exc.NoResultFound):
                nothing.one()
    finally:
        await db.dispose()


async def test_bound_values_get_their_types_processing_and_processed_results_are_refused(
    pg: str,
) -> None:
    # A value bound to a JSON parameter is serialised as SQLAlchemy's own execution would;
    # a column whose value SQLAlchemy makes (JSON, an enum, a float-read NUMERIC) is refused,
    # naming it, instead of coming back as asyncpg's raw value.
    db = Database(pg)
    try:
        async with db.connection() as fast:
            assert isinstance(fast, FastConnection)
            as_json = sa.select(sa.cast(sa.bindparam("doc", type_=sa.JSON), sa.Text).label("doc"))
            row = (await fast.execute(as_json, {"doc": {"size": "M", "n": [1, 2]}})).one()
            assert row.doc == '{"size": "M", "n": [1, 2]}'
            flag = sa.select(sa.bindparam("flag", type_=sa.Boolean).label("flag"))
            assert (await fast.execute(flag, {"flag": True})).one().flag is True
            refused = {
                "doc": sa.cast(sa.literal("{}"), sa.JSON),
                "size": sa.cast(sa.literal("M"), sa.Enum("S", "M", name="size", native_enum=False)),
                "price": sa.cast(sa.literal(1.5), sa.Numeric(asdecimal=False)),
            }
            for name, column in refused.items():
                with pytest.raises(ValueError, match=f"^{name} .*through SQLAlchemy"):
                    await fast.execute(sa.select(column.label(name)))
            decimal = (
                await fast.execute(
                    sa.select(sa.cast(sa.literal("1.50"), sa.Numeric(14, 2)).label("d"))
                )
            ).one()
            assert str(decimal.d) == "1.50", "a Decimal NUMERIC is asyncpg's own value"
    finally:
        await db.dispose()


async def test_a_connection_lost_mid_transaction_is_a_503_error_and_drops_the_pool(
    pg: str,
) -> None:
    db = Database(pg)
    try:
        shop_id = await _shop_id(db)
        pool_before = db.engine.sync_engine.pool
        with pytest.raises(sa_exc.OperationalError) as raised:
            async with db.connection() as fast:
                assert isinstance(fast, FastConnection)
                pid = fast.driver.get_server_pid()
                admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
                try:
                    await admin.execute("SELECT pg_terminate_backend($1)", pid)
                finally:
                    await admin.close()
                await asyncio.sleep(0.1)
                await repo.open_conversation(
                    fast, shop_id=shop_id, session_id=new_id(), customer_id=None
                )
        assert raised.value.connection_invalidated, "the API answers it with a 503"
        assert db.engine.sync_engine.pool is not pool_before, "the pooled connections are dropped"
        _, created = await _open(db, shop_id, new_id())
        assert created, "the next request gets a working connection"
    finally:
        await db.dispose()


async def test_a_pooled_connection_the_server_closed_is_a_503_error_at_begin(pg: str) -> None:
    """Found by the restart test: asyncpg refuses even to make a transaction object on it."""
    db = Database(pg)
    try:
        shop_id = await _shop_id(db)
        async with db.connection() as fast:
            assert isinstance(fast, FastConnection)
            pid = fast.driver.get_server_pid()  # this connection goes back to the pool
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        with pytest.raises(sa_exc.OperationalError) as raised:
            async with db.connection() as fast:
                await fast.execute(sa.select(messages.c.id).where(messages.c.id == -1))
                pass
        assert raised.value.connection_invalidated, "the API answers it with a 503"
        _, created = await _open(db, shop_id, new_id())
        assert created, "the next request gets a working connection"
    finally:
        await db.dispose()


async def _pid(db: Database) -> int:
    async with db.connection() as fast:
        assert isinstance(fast, FastConnection)
        return fast.driver.get_server_pid()


async def _backends(pids: set[int]) -> set[int]:
    """Those of `pids` still connected to the server."""
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE pid = any($1)", pids)
    finally:
        await admin.close()
    return {row["pid"] for row in rows}


async def test_connections_are_reused_without_going_back_through_sqlalchemys_pool(
    pg: str,
) -> None:
    db = Database(pg)
    try:
        pool = db.engine.sync_engine.pool
        first = await _pid(db)
        assert pool.checkedout() == 1, "kept out of SQLAlchemy's pool, idle, for the next use"
        assert await _pid(db) == first and await _pid(db) == first
        assert pool.checkedout() == 1

        # Used by two at once: two connections, both kept afterwards.
        async with db.connection() as one, db.connection() as two:
            assert isinstance(one, FastConnection) and isinstance(two, FastConnection)
            both = {one.driver.get_server_pid(), two.driver.get_server_pid()}
        assert first in both and len(both) == 2
        assert pool.checkedout() == 2

        # A block whose route failed leaves the connection ready for the next use: kept.
        with pytest.raises(RuntimeError):
            async with db.connection() as fast:
                assert isinstance(fast, FastConnection)
                await fast.execute(sa.select(messages.c.id).where(messages.c.id == -1))
                raise RuntimeError("the route failed")
        assert pool.checkedout() == 2

        # A cancelled one may have stopped a query half-way: back to SQLAlchemy's pool.
        with pytest.raises(asyncio.CancelledError):
            async with db.connection() as fast:
                raise asyncio.CancelledError
        assert pool.checkedout() == 1
        async with db.connection(), db.connection():
            pass
        assert pool.checkedout() == 2

        # One left inside a transaction is neither kept nor given back to SQLAlchemy's pool
        # (whose reset would not know to roll it back): it is closed.
        async with db.connection() as fast:
            assert isinstance(fast, FastConnection)
            stray = fast.driver.get_server_pid()
            await fast.driver.execute("BEGIN")
        await asyncio.sleep(0.2)
        assert stray not in await _backends({stray})
        assert pool.checkedout() == 1

        await db.dispose()
        assert not await _backends(both), "dispose closes the idle connections too"
    finally:
        await db.dispose()


async def test_idle_connections_return_to_sqlalchemys_pool_after_a_while(pg: str) -> None:
    db = Database(pg)
    assert db.fast is not None
    db.fast.hold = 0.3  # so that pool_recycle and dispose still reach them
    try:
        pool = db.engine.sync_engine.pool
        first = await _pid(db)
        assert pool.checkedout() == 1
        await asyncio.sleep(0.4)
        async with db.connection():
            # The old one went back to SQLAlchemy's pool and was checked out again (its pool
            # keeps it): a fresh hold, the same server connection.
            assert pool.checkedout() == 1
        assert await _pid(db) == first
    finally:
        await db.dispose()


async def test_a_lost_connection_drops_the_idle_ones_too(pg: str) -> None:
    db = Database(pg)
    try:
        shop_id = await _shop_id(db)
        async with db.connection() as one, db.connection() as two:
            assert isinstance(one, FastConnection) and isinstance(two, FastConnection)
            idle = {one.driver.get_server_pid(), two.driver.get_server_pid()}
        with pytest.raises(sa_exc.OperationalError):
            async with db.connection() as fast:
                assert isinstance(fast, FastConnection)
                admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
                try:
                    await admin.execute(
                        "SELECT pg_terminate_backend($1)", fast.driver.get_server_pid()
                    )
                finally:
                    await admin.close()
                await asyncio.sleep(0.1)
                await repo.open_conversation(
                    fast, shop_id=shop_id, session_id=new_id(), customer_id=None
                )
        await asyncio.sleep(0.2)
        assert not await _backends(idle), "as after a restart, none opened before is trusted"
        assert await _pid(db) not in idle
    finally:
        await db.dispose()
