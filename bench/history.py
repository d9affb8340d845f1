"""3. History: a page of 50 from a conversation, in a table of 10,000 messages and of 1,000,000."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import asyncpg

from bench.common import (
    HTTPClient,
    Server,
    app_env,
    median,
    percentile,
    plain_dsn,
    scratch_database,
    signed_query,
)

SHOP = "bench-history.myshopify.com"


async def _fill(dsn: str, total_messages: int, session_id: str) -> None:
    """Grow the messages table to `total_messages` with other conversations of other shoppers."""
    connection = await asyncpg.connect(dsn)
    try:
        shop = await connection.fetchval("SELECT id FROM shops WHERE domain = $1", SHOP)
        have = await connection.fetchval("SELECT count(*) FROM messages")
        missing = total_messages - have
        per_conversation = 20
        conversations = missing // per_conversation
        if conversations <= 0:
            return
        await connection.execute(
            "INSERT INTO conversations (public_id, shop_id, session_id, status, created_at,"
            " last_activity_at) SELECT gen_random_uuid()::text, $1, gen_random_uuid()::text,"
            " 'ended', now() - make_interval(secs => g), now() FROM generate_series(1, $2) g",
            shop,
            conversations,
        )
        await connection.execute(
            "INSERT INTO messages (public_id, conversation_id, role, content, status, created_at,"
            " updated_at) SELECT gen_random_uuid()::text, c.id,"
            " CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,"
            " 'a message of an earlier conversation, number ' || g, 'complete', now(), now()"
            " FROM conversations c CROSS JOIN generate_series(1, $2) g"
            " WHERE c.shop_id = $1 AND c.session_id <> $3 AND NOT EXISTS"
            " (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)",
            shop,
            per_conversation,
            session_id,
        )
    finally:
        await connection.close()


async def _settle(dsn: str) -> None:
    """Let the bulk load finish its aftermath before anything is timed: without this, the
    autovacuum of a million fresh rows and the checkpoint writing them ran during the 1M
    measurement only, and the ratio measured them rather than the history page."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM (ANALYZE) messages")
        await connection.execute("VACUUM (ANALYZE) conversations")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


async def _target(dsn: str, session_id: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        shop = await connection.fetchval(
            "INSERT INTO shops (domain, installed, created_at) VALUES ($1, true, now())"
            " RETURNING id",
            SHOP,
        )
        conversation = await connection.fetchval(
            "INSERT INTO conversations (public_id, shop_id, session_id, status, created_at,"
            " last_activity_at) VALUES ($1, $2, $3, 'active', now(), now()) RETURNING id",
            str(uuid.uuid4()),
            shop,
            session_id,
        )
        await connection.execute(
            "INSERT INTO messages (public_id, conversation_id, role, content, status, created_at,"
            " updated_at) SELECT gen_random_uuid()::text, $1,"
            " CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,"
            " 'the shopper and the assistant talking, message ' || g, 'complete', now(), now()"
            " FROM generate_series(1, 200) g",
            conversation,
        )
    finally:
        await connection.close()


async def _measure(url: str, session_id: str, requests: int) -> list[float]:
    timings = []
    async with HTTPClient(url) as client:
        for _ in range(requests):
            query = signed_query(SHOP, session_id=session_id, limit="50")
            started = time.perf_counter()
            status, body = await client.request("GET", f"/proxy/history?{query}")
            elapsed = (time.perf_counter() - started) * 1000
            assert status == 200 and len(json.loads(body)["messages"]) == 50
            timings.append(elapsed)
    return timings


def run(database_url: str, *, requests: int = 400, rounds: int = 5) -> dict[str, object]:
    """The same conversation in a database of 10,000 messages and in one of 1,000,000, each
    served by its own worker, measured in alternating rounds so both see the same machine."""
    session_id = str(uuid.uuid4())
    with scratch_database() as large_url:
        sizes = {10_000: database_url, 1_000_000: large_url}
        for size, url in sizes.items():
            asyncio.run(_target(plain_dsn(url), session_id))
            asyncio.run(_fill(plain_dsn(url), size, session_id))
            asyncio.run(_settle(plain_dsn(url)))
        servers = {size: Server("app.main:app", app_env(url)) for size, url in sizes.items()}
        try:
            for server in servers.values():
                asyncio.run(_measure(server.url, session_id, 50))  # warm up
            results: dict[int, list[float]] = {size: [] for size in sizes}
            for _ in range(rounds):
                for size, server in servers.items():
                    results[size] += asyncio.run(
                        _measure(server.url, session_id, requests // rounds)
                    )
        finally:
            for server in servers.values():
                server.stop()
    small, large = median(results[10_000]), median(results[1_000_000])
    return {
        "p50_ms_10k": round(small, 2),
        "p50_ms_1m": round(large, 2),
        "p99_ms_1m": round(percentile(results[1_000_000], 99), 2),
        "ratio": round(large / small, 2),
        "target": "p50 < 3 ms at 1M messages, ratio < 1.5",
        "met": large < 3 and large / small < 1.5,
    }
