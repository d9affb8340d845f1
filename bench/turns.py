"""1. Turn throughput: full turns per second on one worker, against the hand-written baseline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

from bench.common import SECRET, HTTPClient, Server, app_env, median, plain_dsn, signed_query

SHOP = "bench-shop.myshopify.com"
REPLY = (
    "Orders ship within two business days and arrive in three to five more days with "
    "tracking sent by email today"
)  # 20 words
assert len(REPLY.split()) == 20


async def _one_turn(client: HTTPClient, path: str) -> bool:
    body = {"session_id": str(uuid.uuid4()), "message": "how long does shipping take"}
    status, events = await client.request(
        "POST",
        f"{path}?{signed_query(SHOP)}",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    if status != 200:
        return False
    lines = events.decode().splitlines()
    deltas = lines.count("event: delta")
    if deltas != len(REPLY.split()):  # both stream the reply word by word
        raise RuntimeError(f"{path} streamed the reply in {deltas} events, not word by word")
    return "event: done" in lines


async def _run(
    server: Server,
    path: str,
    seconds: float,
    concurrency: int,
    one_turn: Callable[[HTTPClient, str], Awaitable[bool]] = _one_turn,
) -> tuple[float, float]:
    """Turns completed per second, with `concurrency` shoppers sending one turn after another
    (each on its own keep-alive connection), and the server's CPU milliseconds per turn."""
    count = 0
    failures = 0
    deadline = time.perf_counter() + seconds

    async def shopper() -> None:
        nonlocal count, failures
        async with HTTPClient(server.url) as client:
            while time.perf_counter() < deadline:
                if await one_turn(client, path):
                    count += 1
                else:
                    failures += 1

    cpu = server.cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(shopper() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu
    if failures:
        raise RuntimeError(f"{failures} turns failed against {server.url}{path}")
    return count / elapsed, cpu / max(1, count) * 1000


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
        asyncio.run(_run(ours, "/proxy/messages", 2, concurrency))  # warm up
        asyncio.run(_run(baseline, "/turn", 2, concurrency))
        ours_rounds, base_rounds = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine
            base_rounds.append(asyncio.run(_run(baseline, "/turn", seconds, concurrency)))
            ours_rounds.append(asyncio.run(_run(ours, "/proxy/messages", seconds, concurrency)))
    finally:
        ours.stop()
        baseline.stop()
    our_rates = [rate for rate, _ in ours_rounds]
    base_rates = [rate for rate, _ in base_rounds]
    ratio = median(our_rates) / median(base_rates)
    return {
        "service_turns_per_s": round(median(our_rates), 1),
        "baseline_turns_per_s": round(median(base_rates), 1),
        "ratio": round(ratio, 2),
        "target": "ratio >= 0.8",
        "met": ratio >= 0.8,
        "service_cpu_ms_per_turn": round(median([cpu for _, cpu in ours_rounds]), 2),
        "baseline_cpu_ms_per_turn": round(median([cpu for _, cpu in base_rounds]), 2),
        "rounds": [round(r, 1) for r in our_rates],
        "baseline_rounds": [round(r, 1) for r in base_rates],
    }
