"""4. Dashboard search over 100,000 conversations of one shop."""

from __future__ import annotations

import asyncio
import time

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
from tests.factories import session_token  # the same session tokens App Bridge issues

SHOP = "bench-search.myshopify.com"
WORDS = ["parcel", "refund", "sizing", "colour", "delivery", "voucher", "exchange", "wool"]


async def _fill(dsn: str, conversations: int) -> None:
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
            " (ARRAY['active','ended','abandoned'])[1 + g % 3], now() - make_interval(secs => g),"
            " now() FROM generate_series(1, $2) g",
            shop,
            conversations,
        )
        # Each conversation: a question and an answer; about one in a hundred mentions a word.
        await connection.execute(
            "INSERT INTO messages (public_id, conversation_id, role, content, status, created_at,"
            " updated_at) SELECT gen_random_uuid()::text, c.id, r.role,"
            " CASE WHEN c.id % 100 = 0 THEN 'Where is my ' || ($2::text[])[1 + c.id % 8]"
            "  || ' for order ' || c.id ELSE 'Do you have this in another size, order ' || c.id"
            "  END || ' (' || r.role || ')', 'complete', c.created_at, c.created_at"
            " FROM conversations c CROSS JOIN (VALUES ('user'), ('assistant')) r(role)"
            " WHERE c.shop_id = $1",
            shop,
            WORDS,
        )
        await connection.execute("ANALYZE messages; ANALYZE conversations")
    finally:
        await connection.close()


async def _measure(url: str, requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"common word": [], "rare word": [], "no match": []}
    queries = {"common word": "order", "rare word": "refund", "no match": "zeppelin"}
    async with HTTPClient(url) as client:
        for index in range(requests):
            for kind, q in queries.items():
                token = session_token(SHOP, secret=SECRET, audience=API_KEY)
                headers = {"Authorization": f"Bearer {token}"}
                started = time.perf_counter()
                status, body = await client.request(
                    "GET", f"/api/admin/conversations?q={q}&limit=25", headers=headers
                )
                elapsed = (time.perf_counter() - started) * 1000
                assert status == 200, body
                if index >= 5:
                    timings[kind].append(elapsed)
    return timings


def run(
    database_url: str, *, conversations: int = 100_000, requests: int = 60
) -> dict[str, object]:
    asyncio.run(_fill(plain_dsn(database_url), conversations))
    server = Server(
        "app.main:app",
        {**app_env(database_url), "SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": SECRET},
    )
    try:
        timings = asyncio.run(_measure(server.url, requests))
    finally:
        server.stop()
    result: dict[str, object] = {
        f"p50_ms_{kind.replace(' ', '_')}": round(median(values), 1)
        for kind, values in timings.items()
    }
    worst = max(median(values) for values in timings.values())
    result["p99_ms_worst"] = round(max(percentile(v, 99) for v in timings.values()), 1)
    result["target"] = "p50 < 50 ms"
    result["met"] = worst < 50
    return result
