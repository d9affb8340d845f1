"""Rate limits per session, shopper IP and shop: 429 with Retry-After, shared by workers."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from app.db import Database
from tests.factories import ProxyClient, make_shop, messages_of, new_id


async def _send(client: ProxyClient, session_id: str, ip: str) -> int:
    response = await client.http.post(
        client.url("/proxy/messages"),
        json={"session_id": session_id, "message": "hello"},
        headers={"X-Forwarded-For": f"203.0.113.99, {ip}"},
    )
    await response.aread()
    return response.status_code


async def test_session_limit_with_retry_after(start_server, db: Database) -> None:
    limited = start_server(rate_limit_session=3)
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(limited.url, shop) as client:
        codes = [await _send(client, session_id, "198.51.100.1") for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = await client.http.post(
            client.url("/proxy/messages"), json={"session_id": session_id, "message": "again"}
        )
        assert response.status_code == 429
        body = response.json()
        assert body["error"]["code"] == "rate_limited"
        assert "session" in body["error"]["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert await _send(client, new_id(), "198.51.100.1") == 200, "other sessions go on"
    saved = await messages_of(db, shop, session_id)
    assert len([m for m in saved if m.role == "user"]) == 3, "a refused message is not saved"


async def test_ip_limit_uses_the_proxys_forwarded_address(start_server, db: Database) -> None:
    limited = start_server(rate_limit_ip=2)
    shop = await make_shop(db)
    async with ProxyClient(limited.url, shop) as client:
        ip = "192.0.2." + str(int(new_id()[:2], 16))
        refused = new_id()
        sessions = [new_id(), new_id(), refused]
        assert [await _send(client, session_id, ip) for session_id in sessions] == [200, 200, 429]
        status = await client.http.get(
            client.url("/proxy/sessions/status", {"session_id": refused})
        )
        assert status.json()["status"] == "unknown", "a refused first message opens nothing"
        # A spoofed left-most entry does not buy a fresh budget: the proxy's entry counts.
        assert await _send(client, new_id(), ip) == 429
        assert await _send(client, new_id(), "192.0.2.250") == 200


async def test_shop_limit_and_several_workers_share_the_count(start_server, db: Database) -> None:
    one = start_server(rate_limit_shop=4)
    two = start_server(rate_limit_shop=4)
    shop = await make_shop(db)
    async with ProxyClient(one.url, shop) as first, ProxyClient(two.url, shop) as second:
        codes = await asyncio.gather(
            *(
                _send(client, new_id(), f"203.0.113.{i}")
                for i, client in enumerate([first, second] * 3)
            )
        )
    assert sorted(codes) == [200, 200, 200, 200, 429, 429]
    other = await make_shop(db)
    async with ProxyClient(one.url, other) as client:
        assert await _send(client, new_id(), "203.0.113.200") == 200, "other shops go on"


async def _counts(db: Database, *prefixes: str) -> dict[str, int]:
    async with db.autocommit() as connection:
        rows = await connection.execute(sa.text("SELECT bucket, count FROM rate_limit_counters"))
        return {bucket: count for bucket, count in rows if bucket.startswith(prefixes)}


async def test_a_refused_turn_uses_up_no_bucket(start_server, db: Database) -> None:
    # Refused by its address, the turn is taken back out of its session's and its shop's
    # counts too: one abusive address cannot spend the whole shop's budget.
    limited = start_server(rate_limit_ip=2)
    shop = await make_shop(db)
    ip = "198.51.100." + str(int(new_id()[:2], 16))
    refused_session = new_id()
    async with ProxyClient(limited.url, shop) as client:
        assert await _send(client, new_id(), ip) == 200
        assert await _send(client, new_id(), ip) == 200
        for _ in range(3):
            assert await _send(client, refused_session, ip) == 429
    counts = await _counts(db, f"shop:{shop}", f"ip:{ip}", f"session:{shop}:{refused_session}")
    assert counts[f"shop:{shop}"] == 2
    assert counts[f"ip:{ip}"] == 2
    assert counts.get(f"session:{shop}:{refused_session}", 0) == 0


async def test_counters_skip_the_write_ahead_log_on_postgres(db: Database) -> None:
    if not db.postgres:
        pytest.skip("PostgreSQL only: SQLite has no unlogged tables")
    async with db.autocommit() as connection:
        persistence = await connection.scalar(
            sa.text(
                "SELECT relpersistence::text FROM pg_class WHERE relname = 'rate_limit_counters'"
            )
        )
    assert persistence == "u"
