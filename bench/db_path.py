"""10. The storefront's way to PostgreSQL: CPU per statement and per connection checkout.

The same prebuilt statement of app/repo (a session's conversation by its key, as every
history and resume request reads it) run three ways in one process, in alternating rounds:
through SQLAlchemy's own execution (an AsyncConnection, its compiled cache warm), through
Database.connection() (the statement compiled once by SQLAlchemy and run on the pooled
connection's asyncpg, app/pgfast.py), and as plain SQL on asyncpg (the floor). And the cost
of taking a connection: from SQLAlchemy's pool, from the connections Database.connection()
keeps checked out, and from asyncpg's own pool. CPU is the process's own (time.process_time):
PostgreSQL's work is not in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg

from bench.common import median, plain_dsn

PLAIN_SQL = (
    "SELECT id, public_id, shop_id, session_id, customer_id, status, created_at,"
    " last_activity_at, ended_at, message_count, first_question, product_handle"
    " FROM conversations WHERE shop_id = $1 AND session_id = $2"
)


async def _cpu_us(work: Callable[[], Awaitable[object]], times: int) -> float:
    started = time.process_time()
    for _ in range(times):
        await work()
    return (time.process_time() - started) / times * 1e6


async def _measure(url: str, rounds: int, times: int) -> dict[str, object]:
    from app.db import Database
    from app.repo.chat import _CONVERSATION

    db = Database(url)
    pool = await asyncpg.create_pool(plain_dsn(url), min_size=1, max_size=2)
    params = {"shop_id": 1, "session_id": "00000000-0000-4000-8000-000000000000"}
    figures: dict[str, list[float]] = {}
    try:
        async with db.engine.connect() as sqlalchemy, db.connection() as fast:
            raw = (await sqlalchemy.get_raw_connection()).driver_connection
            assert isinstance(raw, asyncpg.Connection)

            async def through_sqlalchemy() -> object:
                return (await sqlalchemy.execute(_CONVERSATION, params)).first()

            async def through_the_hot_path() -> object:
                return (await fast.execute(_CONVERSATION, params)).first()

            async def plain() -> object:
                return await raw.fetchrow(PLAIN_SQL, 1, params["session_id"])

            statements = {
                "sqlalchemy": through_sqlalchemy,
                "hot_path": through_the_hot_path,
                "plain_asyncpg": plain,
            }
            for work in statements.values():  # warm: prepared statements, compiled caches
                await _cpu_us(work, 200)
            for _ in range(rounds):
                for name, work in statements.items():
                    figures.setdefault(f"{name}_us_per_statement", []).append(
                        await _cpu_us(work, times)
                    )

        async def sqlalchemy_pool() -> None:
            async with db.engine.connect():
                pass

        async def held() -> None:
            async with db.connection():
                pass

        async def asyncpg_pool() -> None:
            async with pool.acquire():
                pass

        checkouts = {"sqlalchemy_pool": sqlalchemy_pool, "held": held, "asyncpg_pool": asyncpg_pool}
        for work in checkouts.values():
            await _cpu_us(work, 200)
        for _ in range(rounds):
            for name, work in checkouts.items():
                figures.setdefault(f"{name}_us_per_checkout", []).append(await _cpu_us(work, times))
    finally:
        await pool.close()
        await db.dispose()
    result: dict[str, object] = {name: round(median(values), 1) for name, values in figures.items()}
    hot = float(str(result["hot_path_us_per_statement"]))
    result["ratio_to_plain"] = round(hot / float(str(result["plain_asyncpg_us_per_statement"])), 2)
    result["ratio_to_sqlalchemy"] = round(
        hot / float(str(result["sqlalchemy_us_per_statement"])), 2
    )
    # The choice it informs: the hot path is worth its module while it costs at most half of
    # SQLAlchemy's execution; its distance to plain asyncpg (its rows, the compiled lookup)
    # is reported beside.
    result["target"] = "hot path at most 0.5 of SQLAlchemy's CPU per statement"
    result["met"] = float(str(result["ratio_to_sqlalchemy"])) <= 0.5
    return result


def run(url: str, *, rounds: int = 7, times: int = 2000) -> dict[str, object]:
    return asyncio.run(_measure(url, rounds, times))
