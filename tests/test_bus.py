"""The bus: every worker's subscribers hear every notice once; what may have been missed (a
lost connection, a subscriber too slow) becomes a resync notice; nothing is left behind."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.db import Database
from app.live.backends import PostgresBus, RedisBus, asyncpg_dsn, make_bus
from app.live.bus import (
    MAX_PAYLOAD_BYTES,
    RESYNC,
    Bus,
    BusError,
    InProcessBus,
    Notice,
    Subscription,
)
from tests.conftest import make_settings
from tests.servers import LiveServer, free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WAIT = 10.0  # for a notice to arrive on a busy two-core machine: a bound, not a measure


@pytest.fixture(params=["without-redis", "redis"])
def with_redis(request: pytest.FixtureRequest, database_url: str) -> bool:
    if request.param == "redis" and not database_url.startswith("sqlite"):
        pytest.skip("the Redis bus runs once, with the SQLite half of the suite")
    return request.param == "redis"


@pytest.fixture
async def workers(database_url: str, with_redis: bool) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two workers' buses, as make_bus chooses them: in-process (SQLite: one process, so the
    same bus twice), PostgreSQL's LISTEN/NOTIFY, or Redis. Each test on a channel of its own."""
    settings = make_settings(database_url, redis_url=REDIS_URL if with_redis else "")
    dbs = [Database(database_url, poolclass=NullPool) for _ in range(2)]
    buses = [make_bus(settings, db) for db in dbs]
    if isinstance(buses[0], InProcessBus):
        buses[1] = buses[0]
    own = f"test_bus_{uuid.uuid4().hex[:12]}"
    for bus in buses:
        if isinstance(bus, PostgresBus | RedisBus):
            bus.channel = own
    for bus in dict.fromkeys(buses):
        await bus.start()
        assert bus.connected
    yield buses[0], buses[1]
    for bus in dict.fromkeys(buses):
        await bus.close()
    for db in dbs:
        await db.dispose()


async def _next(subscription: Subscription) -> Notice:
    async with asyncio.timeout(WAIT):
        return await anext(subscription)


async def _quiet(subscription: Subscription, wait: float = 0.2) -> bool:
    """Nothing more arrives within `wait` seconds."""
    await asyncio.sleep(wait)
    return subscription.pending() == 0


def test_make_bus_chooses_the_backend(database_url: str) -> None:
    db = Database(database_url, poolclass=NullPool)
    try:
        assert isinstance(make_bus(make_settings(database_url, redis_url=REDIS_URL), db), RedisBus)
        chosen = make_bus(make_settings(database_url), db)
        assert isinstance(chosen, PostgresBus if db.postgres else InProcessBus)
    finally:
        asyncio.run(db.dispose())


def test_the_listener_connects_with_asyncpg_s_own_dsn() -> None:
    dsn = asyncpg_dsn("postgresql+asyncpg://chat:p%40ss@db.internal:5433/chat?ssl=require")
    assert dsn == "postgresql://chat:p%40ss@db.internal:5433/chat?ssl=require"


async def test_a_publish_reaches_every_subscription_of_every_worker(
    workers: tuple[Bus, Bus],
) -> None:
    one, other = workers
    async with (
        other.subscribe("conv:1") as first,
        other.subscribe("conv:1") as second,
        one.subscribe("conv:1") as publishers_own,
        other.subscribe("conv:2") as elsewhere,
    ):
        await one.publish("conv:1", '{"event": 7}')
        await one.publish("conv:1", '{"event": 8}')
        for subscription in (first, second, publishers_own):
            assert await _next(subscription) == Notice('{"event": 7}')
            assert await _next(subscription) == Notice('{"event": 8}')
        # Each notice once, the publisher's own worker included (its echo is its delivery).
        assert await _quiet(publishers_own) and await _quiet(first)
        assert elsewhere.pending() == 0


async def test_a_slow_subscriber_gets_a_resync_and_never_holds_up_the_publisher(
    workers: tuple[Bus, Bus],
) -> None:
    one, other = workers
    published = 300
    async with other.subscribe("shop:45") as fast, other.subscribe("shop:45") as slow:
        received: list[str | None] = []

        async def read() -> None:
            async for notice in fast:
                received.append(notice.payload)
                if len(received) == published:
                    return

        reader = asyncio.create_task(read())
        async with asyncio.timeout(WAIT):
            for n in range(published):
                await one.publish("shop:45", str(n))
                await asyncio.sleep(0)  # the in-process bus hands over without waiting
            await reader
        assert received == [str(n) for n in range(published)], "the fast one misses nothing"
        # The slow one read nothing: what it had queued went, for one resync, and it holds
        # only what came after (its queue never grew past its bound).
        assert slow.overflows == 1 and slow.pending() == published - slow.limit
        assert await _next(slow) == RESYNC
        tail = [(await _next(slow)).payload for _ in range(published - slow.limit - 1)]
        assert tail == [str(n) for n in range(slow.limit + 1, published)]


async def test_payloads_over_the_limit_are_refused(workers: tuple[Bus, Bus]) -> None:
    one, other = workers
    async with other.subscribe("conv:9") as subscription:
        with pytest.raises(ValueError):
            await one.publish("conv:9", "x" * (MAX_PAYLOAD_BYTES + 1))
        with pytest.raises(ValueError):  # bytes, not characters
            await one.publish("conv:9", "é" * (MAX_PAYLOAD_BYTES // 2 + 1))
        for channel in ("", "conv 9", "conv:9\nshop:1", "c" * 101):
            with pytest.raises(ValueError):
                await one.publish(channel, "{}")
        largest = "é" * (MAX_PAYLOAD_BYTES // 2)  # PostgreSQL takes it, with its channel
        await one.publish("conv:9", largest)
        assert await _next(subscription) == Notice(largest)
        assert await _quiet(subscription, 0.05)


async def test_leaving_a_subscription_unregisters_it(workers: tuple[Bus, Bus]) -> None:
    one, other = workers
    async with other.subscribe("conv:3") as subscription:
        assert other.subscriptions() == 1
        await one.publish("conv:3", "first")
        async for notice in subscription:
            assert notice == Notice("first")
            break  # leaving mid-iteration
    assert other.subscriptions() == 0 and one.subscriptions() == 0
    await one.publish("conv:3", "to nobody")
    assert subscription.ended and await _quiet(subscription, 0.05)
    with pytest.raises(StopAsyncIteration):
        await anext(subscription)
    with pytest.raises(RuntimeError):
        async with other.subscribe("conv:4"):
            raise RuntimeError("the stream's request ended badly")
    assert other.subscriptions() == 0


async def test_closing_the_bus_ends_its_subscriptions(workers: tuple[Bus, Bus]) -> None:
    _, other = workers
    async with other.subscribe("conv:5") as subscription:
        reader = asyncio.create_task(anext(subscription))
        await asyncio.sleep(0)
        await other.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(reader, WAIT)
    assert other.subscriptions() == 0


async def _cut_listener(bus: Bus) -> None:
    """Ends the bus's listening connection from the server's side."""
    if isinstance(bus, PostgresBus):
        assert bus.listener is not None
        pid = bus.listener.get_server_pid()
        admin = await asyncpg.connect(bus.dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        return
    assert isinstance(bus, RedisBus)
    admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        clients = await admin.client_list(_type="pubsub")
        ids = [c["id"] for c in clients if c["name"] == bus.client_name]
        assert len(ids) == 1, clients
        assert await admin.client_kill_filter(_id=ids[0]) == 1
    finally:
        await admin.aclose()


async def test_a_lost_listener_resyncs_its_subscribers_and_listens_again(
    workers: tuple[Bus, Bus],
) -> None:
    one, other = workers
    if isinstance(other, InProcessBus):
        pytest.skip("the in-process bus has no connection to lose")
    async with other.subscribe("conv:6") as subscription, other.subscribe("shop:6") as shop:
        await one.publish("conv:6", "before")
        assert await _next(subscription) == Notice("before")
        reconnects = other.reconnects if isinstance(other, PostgresBus | RedisBus) else 0
        await _cut_listener(other)
        # Whatever was published while it was away may be lost: each subscription is told.
        assert await _next(subscription) == RESYNC
        assert await _next(shop) == RESYNC
        assert other.connected and isinstance(other, PostgresBus | RedisBus)
        assert other.reconnects == reconnects + 1
        await one.publish("conv:6", "after")
        assert await _next(subscription) == Notice("after")
        assert await _quiet(subscription, 0.05) and shop.pending() == 0


async def test_the_bus_of_a_database_away_at_start_listens_once_it_is_back(
    database_url: str,
) -> None:
    db = Database(database_url, poolclass=NullPool)
    if not db.postgres:
        await db.dispose()
        pytest.skip("PostgreSQL's listener")
    bus = PostgresBus(db, channel=f"test_bus_{uuid.uuid4().hex[:12]}")
    real = bus.dsn
    bus.dsn = make_url(real).set(port=free_port()).render_as_string(hide_password=False)
    try:
        await bus.start()  # does not fail the app's start
        assert not bus.connected
        async with bus.subscribe("conv:7") as subscription:
            bus.dsn = real
            assert await _next(subscription) == RESYNC
            assert bus.connected
            await bus.publish("conv:7", "hello")
            assert await _next(subscription) == Notice("hello")
    finally:
        await bus.close()
        await db.dispose()


async def test_the_bus_of_a_redis_away_at_start_listens_once_it_is_back() -> None:
    away = f"redis://127.0.0.1:{free_port()}/15"  # nothing listens there
    bus = RedisBus(away, channel=f"test_bus_{uuid.uuid4().hex[:12]}")
    try:
        await bus.start()
        assert not bus.connected and bus.status() == {"backend": "redis", "connected": False}
        async with bus.subscribe("conv:8") as subscription:
            bus.url = REDIS_URL
            assert await _next(subscription) == RESYNC
            assert bus.connected
            with pytest.raises(BusError):  # its publisher still points at the closed port
                await bus.publish("conv:8", "hello")
    finally:
        await bus.close()


async def test_readiness_reports_the_bus(server: LiveServer, database_url: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        ready = (await client.get("/readyz")).json()
    backend = "in-process" if database_url.startswith("sqlite") else "postgres"
    assert ready["bus"] == {"backend": backend, "connected": True}
