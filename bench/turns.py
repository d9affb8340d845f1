"""1. Turn throughput: full turns per second on one worker, against the hand-written baseline."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from bench.common import SECRET, Server, app_env, median, plain_dsn, signed_query

SHOP = "bench-shop.myshopify.com"
REPLY = (
    "Orders ship within two business days and arrive in three to five more days with "
    "tracking sent by email today"
)  # 20 words
assert len(REPLY.split()) == 20


async def _one_turn(client: httpx.AsyncClient, path: str) -> bool:
    body = {"session_id": str(uuid.uuid4()), "message": "how long does shipping take"}
    async with client.stream("POST", f"{path}?{signed_query(SHOP)}", json=body) as response:
        if response.status_code != 200:
            return False
        done, deltas = False, 0
        async for line in response.aiter_lines():
            if line == "event: done":
                done = True
            elif line == "event: delta":
                deltas += 1
        if deltas != len(REPLY.split()):  # both stream the reply word by word
            raise RuntimeError(f"{path} streamed the reply in {deltas} events, not word by word")
        return done


async def _run(url: str, path: str, seconds: float, concurrency: int) -> float:
    """Turns completed per second, with `concurrency` shoppers sending one turn after another."""
    count = 0
    failures = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def shopper() -> None:
            nonlocal count, failures
            while time.perf_counter() < deadline:
                if await _one_turn(client, path):
                    count += 1
                else:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(shopper() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} turns failed against {url}{path}")
    return count / elapsed


async def _setup(database_url: str) -> None:
    from app import repo
    from app.db import Database

    db = Database(database_url)
    async with db.session() as session:
        shop = await repo.install_shop(session, domain=SHOP)
        assert shop.id is not None
        await repo.replace_faq(
            session, shop_id=shop.id, entries=[("How long does shipping take?", REPLY)]
        )
    await db.dispose()


def run(
    database_url: str, *, rounds: int = 3, seconds: float = 6.0, concurrency: int = 16
) -> dict[str, object]:
    asyncio.run(_setup(database_url))
    ours = Server("app.main:app", app_env(database_url, AI_OFFLINE_WORD_DELAY="0"))
    baseline = Server(
        "bench.baseline:app",
        {
            "SHOPIFY_API_SECRET": SECRET,
            "BENCH_DSN": plain_dsn(database_url),
            "BENCH_REPLY": REPLY,
        },
    )
    try:
        asyncio.run(_run(ours.url, "/proxy/messages", 2, concurrency))  # warm up
        asyncio.run(_run(baseline.url, "/turn", 2, concurrency))
        our_rates, base_rates = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine
            base_rates.append(asyncio.run(_run(baseline.url, "/turn", seconds, concurrency)))
            our_rates.append(asyncio.run(_run(ours.url, "/proxy/messages", seconds, concurrency)))
    finally:
        ours.stop()
        baseline.stop()
    ratio = median(our_rates) / median(base_rates)
    return {
        "service_turns_per_s": round(median(our_rates), 1),
        "baseline_turns_per_s": round(median(base_rates), 1),
        "ratio": round(ratio, 2),
        "target": "ratio >= 0.8",
        "met": ratio >= 0.8,
        "rounds": [round(r, 1) for r in our_rates],
        "baseline_rounds": [round(r, 1) for r in base_rates],
    }
