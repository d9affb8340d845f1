"""Rate limits per session, shopper IP and shop: 429 with Retry-After, shared by workers,
counted in the database or in Redis."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
import uuid

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from app.db import Database
from app.ratelimit import REDIS_PREFIX
from tests.factories import ProxyClient, make_shop, messages_of, new_id
from tests.servers import free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["database", "redis"])
def counted_in(request: pytest.FixtureRequest) -> str:
    """Where the counters live: the database, or Redis (the suite's own Redis, as CI's)."""
    return str(request.param)


@pytest.fixture
def start_limited(start_server, counted_in: str):  # type: ignore[no-untyped-def]
    def start(**overrides: object):  # type: ignore[no-untyped-def]
        redis_url = REDIS_URL if counted_in == "redis" else ""
        # A test's turns all fall in one minute's window: one that began a few seconds before
        # the window turned would find its counts reset half-way (a slow machine makes it so).
        left = 60 - time.time() % 60
        if left < 10:
            time.sleep(left + 0.05)
        return start_server(redis_url=redis_url, **overrides)

    return start


def _address() -> str:
    """A shopper address no other test uses (Redis outlives one test run), written as the
    limiter writes it into its buckets."""
    return str(ipaddress.ip_address(f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"))


async def _send(client: ProxyClient, session_id: str, ip: str) -> int:
    response = await client.http.post(
        client.url("/proxy/messages"),
        json={"session_id": session_id, "message": "hello"},
        headers={"X-Forwarded-For": f"203.0.113.99, {ip}"},
    )
    await response.aread()
    return response.status_code


async def test_session_limit_with_retry_after(start_limited, db: Database) -> None:
    limited = start_limited(rate_limit_session=3)
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(limited.url, shop) as client:
        address = _address()
        codes = [await _send(client, session_id, address) for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = await client.http.post(
            client.url("/proxy/messages"), json={"session_id": session_id, "message": "again"}
        )
        assert response.status_code == 429
        body = response.json()
        assert body["error"]["code"] == "rate_limited"
        assert "session" in body["error"]["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert await _send(client, new_id(), address) == 200, "other sessions go on"
    saved = await messages_of(db, shop, session_id)
    assert len([m for m in saved if m.role == "user"]) == 3, "a refused message is not saved"


async def test_ip_limit_uses_the_proxys_forwarded_address(start_limited, db: Database) -> None:
    limited = start_limited(rate_limit_ip=2)
    shop = await make_shop(db)
    async with ProxyClient(limited.url, shop) as client:
        ip = _address()
        refused = new_id()
        sessions = [new_id(), new_id(), refused]
        assert [await _send(client, session_id, ip) for session_id in sessions] == [200, 200, 429]
        status = await client.http.get(
            client.url("/proxy/sessions/status", {"session_id": refused})
        )
        assert status.json()["status"] == "unknown", "a refused first message opens nothing"
        # A spoofed left-most entry does not buy a fresh budget: the proxy's entry counts.
        assert await _send(client, new_id(), ip) == 429
        assert await _send(client, new_id(), _address()) == 200


@pytest.mark.parametrize(
    "forwarded",
    ["x" * 300, "203.0.113.9, " + "1" * 300, "fe80::1%" + "x" * 300, "²", "unknown", "1.2.3.4.5"],
)
async def test_a_forwarded_entry_that_is_no_address_is_400(
    client: ProxyClient, db: Database, forwarded: str
) -> None:
    # On PostgreSQL, a long one overflowed the counters' bucket column: a 500.
    session_id = new_id()
    response = await client.http.post(
        client.url("/proxy/messages"),
        json={"session_id": session_id, "message": "hello"},
        headers={"X-Forwarded-For": forwarded.encode()},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_forwarded_for"
    assert await messages_of(db, client.shop, session_id) == []


@pytest.mark.parametrize(
    "forwarded", ["203.0.113.9", "203.0.113.9:443", "[2001:db8::1]:443", "2001:DB8::1"]
)
async def test_forwarded_addresses_are_read_with_or_without_a_port(
    client: ProxyClient, forwarded: str
) -> None:
    response = await client.http.post(
        client.url("/proxy/messages"),
        json={"session_id": new_id(), "message": "hello"},
        headers={"X-Forwarded-For": f"198.51.100.7, {forwarded}"},
    )
    await response.aread()
    assert response.status_code == 200


async def test_one_address_written_two_ways_is_one_shopper(start_limited, db: Database) -> None:
    limited = start_limited(rate_limit_ip=1)
    shop = await make_shop(db)
    address = ipaddress.ip_address(_address())
    spellings = [str(address).upper(), address.exploded, f"[{address}]:443"]
    async with ProxyClient(limited.url, shop) as client:
        assert [await _send(client, new_id(), ip) for ip in spellings] == [200, 429, 429]


async def test_shop_limit_and_several_workers_share_the_count(start_limited, db: Database) -> None:
    one = start_limited(rate_limit_shop=4)
    two = start_limited(rate_limit_shop=4)
    shop = await make_shop(db)
    async with ProxyClient(one.url, shop) as first, ProxyClient(two.url, shop) as second:
        codes = await asyncio.gather(
            *(_send(client, new_id(), _address()) for client in [first, second] * 3)
        )
    assert sorted(codes) == [200, 200, 200, 200, 429, 429]
    other = await make_shop(db)
    async with ProxyClient(one.url, other) as client:
        assert await _send(client, new_id(), _address()) == 200, "other shops go on"


async def _counts(db: Database, counted_in: str, buckets: list[str]) -> list[int]:
    """The counts of this minute's window (0 for a bucket never counted)."""
    if counted_in == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            found: dict[str, int] = {}
            for bucket in buckets:
                async for key in client.scan_iter(match=f"{REDIS_PREFIX}{bucket}:*"):
                    found[bucket] = found.get(bucket, 0) + int(await client.get(key) or 0)
                    assert 0 < await client.ttl(key) <= 120, "counters expire"
        finally:
            await client.aclose()
        return [found.get(bucket, 0) for bucket in buckets]
    async with db.transaction() as connection:
        rows = await connection.execute(sa.text("SELECT bucket, count FROM rate_limit_counters"))
        stored = {bucket: count for bucket, count in rows}
    return [stored.get(bucket, 0) for bucket in buckets]


async def test_a_refused_turn_uses_up_no_bucket(
    start_limited, counted_in: str, db: Database
) -> None:
    # Refused by its address, the turn counts neither in its session's nor in its shop's
    # bucket: one abusive address cannot spend the whole shop's budget.
    limited = start_limited(rate_limit_ip=2)
    shop = await make_shop(db)
    ip = _address()
    refused_session = new_id()
    async with ProxyClient(limited.url, shop) as client:
        assert await _send(client, new_id(), ip) == 200
        assert await _send(client, new_id(), ip) == 200
        for _ in range(3):
            assert await _send(client, refused_session, ip) == 429
    buckets = [f"shop:{shop}", f"ip:{ip}", f"session:{shop}:{refused_session}"]
    assert await _counts(db, counted_in, buckets) == [2, 2, 0]


async def test_while_redis_is_away_the_database_counts(start_server, db: Database) -> None:
    # Nothing listens on this port: Redis is configured but cannot be reached.
    away = start_server(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_session=2)
    shop = await make_shop(db)
    session_id = new_id()
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    logging.getLogger("app.ratelimit").addHandler(handler)
    try:
        async with ProxyClient(away.url, shop) as client:
            codes = [await _send(client, session_id, _address()) for _ in range(3)]
            ready = await client.http.get("/readyz")
    finally:
        logging.getLogger("app.ratelimit").removeHandler(handler)
    assert codes == [200, 200, 429], "the limits hold, counted in the database"
    assert await _counts(db, "database", [f"session:{shop}:{session_id}"]) == [2]
    said = [record.getMessage() for record in warnings]
    assert len(said) == 1, "said once, not for every turn"
    assert "the database counts them" in said[0]
    assert ready.status_code == 200, "ready without Redis"
    assert ready.json()["checks"] == {"database": "ok", "redis": "unreachable"}


async def test_readiness_reports_redis(start_limited, counted_in: str) -> None:
    server = start_limited()
    async with ProxyClient(server.url, "unused.myshopify.com") as client:
        checks = (await client.http.get("/readyz")).json()["checks"]
    assert checks.get("redis") == ("ok" if counted_in == "redis" else None)


async def test_counters_skip_the_write_ahead_log_on_postgres(db: Database) -> None:
    if not db.postgres:
        pytest.skip("PostgreSQL only: SQLite has no unlogged tables")
    async with db.transaction() as connection:
        persistence = await connection.scalar(
            sa.text(
                "SELECT relpersistence::text FROM pg_class WHERE relname = 'rate_limit_counters'"
            )
        )
    assert persistence == "u"


async def test_behind_a_platform_router_the_shopper_is_the_second_entry_from_the_right(
    start_limited, db: Database
) -> None:
    """Shopify's app proxy writes the shopper's address; a router in front of the service
    (Heroku's, a load balancer) then appends Shopify's own. With PROXY_HOPS=2 each shopper
    has their own budget, and what a shopper writes further left still buys nothing."""
    limited = start_limited(rate_limit_ip=2, proxy_hops=2)
    shopify_egress = _address()
    shop = await make_shop(db)

    async def send(client: ProxyClient, shopper: str, forged: str = "198.51.100.7") -> int:
        response = await client.http.post(
            client.url("/proxy/messages"),
            json={"session_id": new_id(), "message": "hello"},
            headers={"X-Forwarded-For": f"{forged}, {shopper}, {shopify_egress}"},
        )
        await response.aread()
        return response.status_code

    async with ProxyClient(limited.url, shop) as client:
        ada, bob = _address(), _address()
        assert [await send(client, ada), await send(client, ada)] == [200, 200]
        assert await send(client, ada, forged=_address()) == 429, "a forged entry buys nothing"
        assert await send(client, bob) == 200, "another shopper behind the same router goes on"


async def test_counting_and_taking_back_at_once_never_deadlock(db: Database) -> None:
    # A retried turn's count takes back what it added while other turns of the same shop and
    # session count: each statement locks the same rows, and in one order for all of them
    # (CI once saw PostgreSQL's deadlock detector fail a retry with a 500 here).
    from app import repo

    window = int(time.time() // 60) * 60
    shop = f"deadlock-{new_id()[:8]}.myshopify.com"
    ip = _address()
    names = [f"session:{shop}:s", f"ip:{ip}", f"shop:{shop}"]

    async def count_then_take_back(order: list[str]) -> None:
        async with db.connection() as connection:
            await repo.count_hits(connection, buckets=order, window_start=window)
        async with db.connection() as connection:
            await repo.uncount_hits(connection, buckets=order[::-1], window_start=window)

    orders = [names, names[::-1], [names[1], names[2], names[0]]]
    for _ in range(15):
        await asyncio.gather(*(count_then_take_back(orders[i % 3]) for i in range(12)))
    assert await _counts(db, "database", names) == [0, 0, 0], "every count taken back"
