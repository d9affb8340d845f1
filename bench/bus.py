"""11. The bus on PostgreSQL: publish to delivery between two worker processes.

A subscriber process holds 1,000 subscriptions (conv:0 to conv:999, a task reading each, as
1,000 shoppers' streams would) on its PostgresBus; this process, the other worker, publishes
on its own PostgresBus, a notice every 2 ms to each channel in turn, each carrying its send
time (time.monotonic: one clock for every process of the machine). Latency: from before
publish() to the subscriber's task holding the notice, NOTIFY's round trip and the
listener's fan-out included. Then the publisher's CPU per publish (time.process_time), two
ways in alternating rounds, to a channel nobody listens to: through Database.connection(),
as PostgresBus publishes, and on a dedicated asyncpg connection.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from contextlib import AsyncExitStack
from multiprocessing.connection import Connection

import asyncpg

from bench.common import median, percentile, plain_dsn

SUBSCRIPTIONS = 1_000
INTERVAL = 0.002
TARGET_P99_MS = 100.0


async def _subscribe(url: str, expected: int, pipe: Connection) -> None:
    from app.db import Database
    from app.live.backends import PostgresBus
    from app.live.bus import Subscription

    db = Database(url)
    bus = PostgresBus(db)
    await bus.start()
    latencies: list[float] = []
    resyncs = 0
    done = asyncio.Event()

    async def read(subscription: Subscription) -> None:
        nonlocal resyncs
        async for notice in subscription:
            if notice.payload is None:
                resyncs += 1
                continue
            latencies.append(time.monotonic() - float(notice.payload))
            if len(latencies) >= expected:
                done.set()

    try:
        async with AsyncExitStack() as stack:
            subscriptions = [
                await stack.enter_async_context(bus.subscribe(f"conv:{n}"))
                for n in range(SUBSCRIPTIONS)
            ]
            readers = [asyncio.create_task(read(s)) for s in subscriptions]
            pipe.send("ready")
            try:
                await asyncio.wait_for(done.wait(), 60 + expected * INTERVAL * 2)
            except TimeoutError:
                pass
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await bus.close()
        await db.dispose()
    pipe.send((latencies, resyncs))


def _subscriber(url: str, expected: int, pipe: Connection) -> None:
    asyncio.run(_subscribe(url, expected, pipe))


async def _publish(url: str, notices: int) -> None:
    from app.db import Database
    from app.live.backends import PostgresBus

    db = Database(url)
    bus = PostgresBus(db)
    await bus.start()
    try:
        await bus.publish("warm:0", "0")  # the statement, a pooled connection; nobody hears
        started = time.monotonic()
        for n in range(notices):
            await bus.publish(f"conv:{n % SUBSCRIPTIONS}", repr(time.monotonic()))
            # Paced against the clock, not by sleeps that add up.
            await asyncio.sleep(max(0.0, started + (n + 1) * INTERVAL - time.monotonic()))
    finally:
        await bus.close()
        await db.dispose()


async def _publish_cpu(url: str, rounds: int, times: int) -> dict[str, float]:
    from app.db import Database
    from app.live.backends import PostgresBus
    from app.live.bus import frame

    db = Database(url)
    idle = PostgresBus(db, channel="bench_idle")  # publishes only: never started
    dedicated = await asyncpg.connect(plain_dsn(url))
    message = frame("conv:1", '{"event": 123456}')

    async def pooled() -> None:
        await idle.publish("conv:1", '{"event": 123456}')

    async def own_connection() -> None:
        await dedicated.execute("SELECT pg_notify($1, $2)", "bench_idle", message)

    ways = {"pooled": pooled, "dedicated": own_connection}
    figures: dict[str, list[float]] = {}
    try:
        for work in ways.values():
            for _ in range(200):
                await work()
        for _ in range(rounds):
            for name, work in ways.items():
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(times):
                    await work()
                figures.setdefault(f"publish_cpu_us_{name}", []).append(
                    (time.process_time() - cpu) / times * 1e6
                )
                figures.setdefault(f"publish_wall_us_{name}", []).append(
                    (time.perf_counter() - wall) / times * 1e6
                )
    finally:
        await dedicated.close()
        await db.dispose()
    return {name: round(median(values), 1) for name, values in figures.items()}


def run(
    url: str, *, notices: int = 3_000, rounds: int = 5, times: int = 1_000
) -> dict[str, object]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    subscriber = context.Process(target=_subscriber, args=(url, notices, theirs))
    subscriber.start()
    try:
        if not ours.poll(60) or ours.recv() != "ready":
            raise RuntimeError("the subscriber process did not start")
        asyncio.run(_publish(url, notices))
        if not ours.poll(60 + notices * INTERVAL * 2):
            raise RuntimeError("the subscriber process did not report")
        latencies, resyncs = ours.recv()
    finally:
        subscriber.join(30)
        if subscriber.is_alive():
            subscriber.kill()
    ms = [latency * 1000 for latency in latencies]
    p99 = round(percentile(ms, 99), 2)
    result: dict[str, object] = {
        "subscriptions": SUBSCRIPTIONS,
        "notices": notices,
        "delivered": len(ms),
        "resyncs": resyncs,
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": p99,
        "max_ms": round(max(ms), 2) if ms else None,
        **asyncio.run(_publish_cpu(url, rounds, times)),
    }
    result["target"] = f"p99 publish to delivery < {TARGET_P99_MS:.0f} ms, none lost"
    result["met"] = p99 < TARGET_P99_MS and len(ms) == notices and resyncs == 0
    return result
