"""6. The merchant's transcript: a page of a conversation of 10,000 messages."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import asyncpg

from bench.common import (
    API_KEY,
    SECRET,
    HTTPClient,
    Server,
    app_env,
    median,
    percentile,
    plain_dsn,
    shop_token,
)
from tests.factories import session_token

SHOP = "bench-transcript.myshopify.com"


async def _fill(dsn: str, messages: int) -> tuple[str, str]:
    """The long conversation among 1,000 ordinary ones; its public id and that of its middle
    message (where a later page starts)."""
    connection = await asyncpg.connect(dsn)
    try:
        shop = await connection.fetchval(
            "INSERT INTO shops (domain, installed, access_token, created_at)"
            " VALUES ($1, true, $2, now()) RETURNING id",
            SHOP,
            shop_token(),
        )
        await connection.execute(
            "INSERT INTO conversations (public_id, shop_id, session_id, status, created_at,"
            " last_activity_at) SELECT gen_random_uuid()::text, $1, gen_random_uuid()::text,"
            " 'ended', now() - make_interval(secs => g), now() FROM generate_series(1, 1000) g",
            shop,
        )
        public_id = str(uuid.uuid4())
        conversation = await connection.fetchval(
            "INSERT INTO conversations (public_id, shop_id, session_id, status, created_at,"
            " last_activity_at) VALUES ($1, $2, $3, 'active', now(), now()) RETURNING id",
            public_id,
            shop,
            str(uuid.uuid4()),
        )
        others = await connection.fetchval(
            "SELECT min(id) FROM conversations WHERE shop_id = $1", shop
        )
        # Interleaved with 10 messages of each of the others, as in a busy shop.
        await connection.execute(
            "INSERT INTO messages (public_id, conversation_id, role, content, status, created_at,"
            " updated_at) SELECT gen_random_uuid()::text,"
            " CASE WHEN g % 2 = 0 THEN $1 ELSE $3 + (g / 2) % 1000 END,"
            " CASE WHEN g % 4 < 2 THEN 'user' ELSE 'assistant' END,"
            " 'a message of about the length shoppers and the assistant write, number ' || g,"
            " 'complete', now(), now() FROM generate_series(1, $2 * 2) g",
            conversation,
            messages,
            others,
        )
        middle = await connection.fetchval(
            "SELECT public_id FROM messages WHERE conversation_id = $1 ORDER BY id"
            " OFFSET $2 LIMIT 1",
            conversation,
            messages // 2,
        )
        await connection.execute("VACUUM (ANALYZE) messages")
        await connection.execute("VACUUM (ANALYZE) conversations")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()
    return public_id, str(middle)


async def _measure(url: str, target: str, requests: int) -> list[float]:
    timings = []
    async with HTTPClient(url) as client:
        for index in range(requests + 3):
            token = session_token(SHOP, secret=SECRET, audience=API_KEY)
            started = time.perf_counter()
            status, body = await client.request(
                "GET", target, headers={"Authorization": f"Bearer {token}"}
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert status == 200, body
            assert json.loads(body)["messages"], body[:200]
            if index >= 3:
                timings.append(elapsed)
    return timings


def run(database_url: str, *, messages: int = 10_000, requests: int = 100) -> dict[str, object]:
    conversation, middle = asyncio.run(_fill(plain_dsn(database_url), messages))
    server = Server("app.main:app", app_env(database_url))
    path = f"/api/admin/conversations/{conversation}"
    try:
        first = asyncio.run(_measure(server.url, path, requests))
        later = asyncio.run(_measure(server.url, f"{path}?after={middle}", requests))
    finally:
        server.stop()
    worst = max(median(first), median(later))
    return {
        "messages": messages,
        "p50_ms_first_page": round(median(first), 1),
        "p99_ms_first_page": round(percentile(first, 99), 1),
        "p50_ms_middle_page": round(median(later), 1),
        "p99_ms_middle_page": round(percentile(later, 99), 1),
        "target": "p50 < 20 ms",
        "met": worst < 20,
    }
