"""9. Turn throughput with the catalog: every turn a product question, which the offline
assistant looks up in the shop's policies and then in its 10,000 products (search_policies,
then search_products), answering with product cards; against the hand-written endpoint doing
the same searches and writes by hand (bench/catalog_baseline.py), in alternating rounds."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid

import asyncpg

from bench import catalog_search
from bench.common import SECRET, HTTPClient, Server, app_env, median, plain_dsn, signed_query
from bench.turns import _run

PRODUCTS = 10_000
SHOP = "bench-catalog-1.myshopify.com"  # as catalog_search's fill names its first shop
QUESTIONS = [
    "do you have merino sweaters under $100",
    "wool socks",
    "cheapest beanie",
    "green linen shirt",
]
POLICIES = [
    ("shipping", "Shipping policy", "Orders ship within two business days and arrive in three "
     "to five more days; tracking is sent by email.", "https://bench.example/policies/shipping"),
    ("refund", "Refund policy", "Return unworn items within thirty days for a full refund to "
     "the original payment method.", "https://bench.example/policies/refunds"),
    ("privacy", "Privacy policy", "We keep your name, address and email only to fulfil your "
     "orders, and never sell them.", "https://bench.example/policies/privacy"),
    ("contact", "Contact", "Write to help@bench.example, or call Monday to Friday from nine "
     "to five.", None),
]  # fmt: skip
_questions = itertools.cycle(QUESTIONS)
# How many delta events each question's reply takes: the first server to answer it sets it,
# and every later answer (of either server) must match.
_deltas: dict[str, int] = {}


async def _one_turn(client: HTTPClient, path: str) -> bool:
    question = next(_questions)
    body = {"session_id": str(uuid.uuid4()), "message": question}
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
    expected = _deltas.setdefault(question, deltas)
    if deltas != expected or lines.count("event: products") != 1:
        raise RuntimeError(
            f"{path} answered {question!r} in {deltas} deltas (not {expected}) and "
            f"{lines.count('event: products')} products events (not 1)"
        )
    shown = lines[lines.index("event: products") + 1]  # its data
    if not json.loads(shown.removeprefix("data: "))["products"]:
        raise RuntimeError(f"{path} showed no product for {question!r}")
    return "event: done" in lines


async def _setup(database_url: str) -> None:
    from app import repo
    from app.db import Database

    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        shop_id = await catalog_search._fill_shop(connection, 1, PRODUCTS)
        # Variants too, as a product of Shopify's has: a card adds its first available one.
        await connection.execute(
            "UPDATE products SET variants = (SELECT json_agg(json_build_object('id',"
            " product_id * 10 + i, 'title', size, 'options', json_build_object('Size', size),"
            " 'price', price_min::text, 'compare_at_price', NULL, 'available',"
            " available AND i <> 2, 'sku', NULL)) FROM unnest(ARRAY['Small', 'Medium',"
            " 'Large']) WITH ORDINALITY s(size, i))::text WHERE shop_id = $1",
            shop_id,
        )
        await connection.execute("VACUUM (ANALYZE) products")
    finally:
        await connection.close()
    db = Database(database_url)
    async with db.session() as session:
        await repo.replace_policies(session, shop_id=shop_id, entries=POLICIES)
    await db.dispose()


def run(
    database_url: str, *, rounds: int = 3, seconds: float = 6.0, concurrency: int = 16
) -> dict[str, object]:
    asyncio.run(_setup(database_url))
    ours = Server("app.main:app", app_env(database_url, AI_OFFLINE_WORD_DELAY="0"))
    baseline = Server(
        "bench.catalog_baseline:app",
        {"SHOPIFY_API_SECRET": SECRET, "BENCH_DSN": plain_dsn(database_url)},
    )
    try:
        asyncio.run(_run(ours, "/proxy/messages", 2, concurrency, _one_turn))  # warm up
        asyncio.run(_run(baseline, "/turn", 2, concurrency, _one_turn))
        ours_rounds, base_rounds = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine
            base_rounds.append(
                asyncio.run(_run(baseline, "/turn", seconds, concurrency, _one_turn))
            )
            ours_rounds.append(
                asyncio.run(_run(ours, "/proxy/messages", seconds, concurrency, _one_turn))
            )
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
        "target": "ratio >= 0.9",
        "met": ratio >= 0.9,
        "service_cpu_ms_per_turn": round(median([cpu for _, cpu in ours_rounds]), 2),
        "baseline_cpu_ms_per_turn": round(median([cpu for _, cpu in base_rounds]), 2),
        "products": PRODUCTS,
        "questions": QUESTIONS,
        "deltas_per_question": dict(_deltas),
        "rounds": [round(r, 1) for r in our_rates],
        "baseline_rounds": [round(r, 1) for r in base_rates],
    }
