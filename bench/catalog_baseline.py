"""The baseline for turn throughput with a catalog: benchmark 1's hand-written Starlette +
asyncpg endpoint (bench/baseline.py), doing by hand what the offline assistant does with its
tools on a product question.

A turn: verify the signature and open the turn (as bench/baseline.py), look the question up
in the shop's policies and FAQ, then in its products, with the statements
app/repo/catalog_search.py sends on PostgreSQL (the same SQL, so the same plans and indexes),
build the cards, save them and the tools used on the reply, send a products event and the
answer word by word, finish the reply. It calls the service's pure text functions (which
words are searched and their nearest catalog words, price bounds, whether a policy answers,
how a price reads), so both make the same searches and write the same reply; what it does
without is the service's machinery: SQLAlchemy, the tool loop and its JSON, the reply task.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.ai.base import FaqItem
from app.ai.offline import NOTHING_FOUND, best_answer
from app.ai.offline_words import describe_price, price_bounds, product_words
from app.search_terms import allowed_edits, closest, words
from bench import baseline
from bench.baseline import sse, verified_shop

WEIGHTS = "'{0.1, 0.3, 0.6, 1.0}'::float4[]"
SHOWN = (
    "product_id, handle, title, description, vendor, product_type, tags, available,"
    " price_min, price_max, compare_at_min, compare_at_max, currency, image_url, image_alt,"
    " url, options, variants"
)
CARDS = 6


class Args(list[Any]):
    """A statement's values: each call adds one and gives its placeholder."""

    def __call__(self, value: object, cast: str) -> str:
        self.append(value)
        return f"${len(self)}::{cast}"


def tsquery(a: Args, shop_id: int, groups: list[list[str]], every: bool) -> str:
    joined = (" && " if every else " || ").join(
        "(" + " || ".join(f"plainto_tsquery(c.config, {a(w, 'VARCHAR')})" for w in group) + ")"
        for group in groups
    )
    config = f"(SELECT shop_search_config({a(shop_id, 'INTEGER')}) AS config) AS c"
    return f"(SELECT {joined} FROM {config})"


async def nearest(
    connection: asyncpg.Connection, shop_id: int, found: list[str]
) -> list[list[str]]:
    """Each word, with the shop's nearest words if it has no such word (a misspelling)."""
    groups = [[w] for w in found]
    fuzzy = [w for w in found if allowed_edits(w) and not any(c.isdigit() for c in w)]
    if not fuzzy:
        return groups
    a = Args()
    checks = ", ".join(
        f"EXISTS (SELECT * FROM catalog_terms WHERE shop_id = {a(shop_id, 'INTEGER')}"
        f" AND term = {a(w, 'VARCHAR')}) AS w{i}"
        for i, w in enumerate(fuzzy)
    )
    known = await connection.fetchrow(f"SELECT {checks}", *a)
    unknown = [w for w, there in zip(fuzzy, known, strict=True) if not there]
    if not unknown:
        return groups
    a = Args()
    near = " UNION ALL ".join(
        f"SELECT {a(i, 'INTEGER')} AS word, term FROM catalog_terms"
        f" WHERE shop_id = {a(shop_id, 'INTEGER')} AND (term % {a(w, 'VARCHAR')}"
        f" OR term >= {a(w[:3], 'VARCHAR')} AND term < {a(w[:2] + chr(ord(w[2]) + 1), 'VARCHAR')})"
        for i, w in enumerate(unknown)
    )
    candidates: list[list[tuple[str, int]]] = [[] for _ in unknown]
    for row in await connection.fetch(near, *a):
        candidates[row[0]].append((row[1], 0))
    for word, terms in zip(unknown, candidates, strict=True):
        groups[found.index(word)] += closest(word, terms)
    return groups


async def policies(
    connection: asyncpg.Connection, shop_id: int, question: str
) -> list[asyncpg.Record]:
    found = words(question)
    if not found:
        return []
    groups = await nearest(connection, shop_id, found)
    a = Args()
    score = f"ts_rank({WEIGHTS}, search_vector, {tsquery(a, shop_id, groups, False)})"
    sql = (
        f"SELECT kind, title, body, url, {score} AS score FROM knowledge_entries"
        f" WHERE shop_id = {a(shop_id, 'INTEGER')}"
        f" AND search_vector @@ {tsquery(a, shop_id, groups, False)}"
        f" ORDER BY score DESC, kind, title LIMIT {a(3, 'INTEGER')}"
    )
    return list(await connection.fetch(sql, *a))


async def ranked(
    connection: asyncpg.Connection,
    shop_id: int,
    groups: list[list[str]],
    every: bool,
    bounds: tuple[float | None, float | None, str],
    limit: int,
    seen: Sequence[int] = (),
) -> list[asyncpg.Record]:
    low, high, order = bounds
    a = Args()
    where = [f"shop_id = {a(shop_id, 'BIGINT')}", "visible IS true"]
    if high is not None:
        where.append(f"price_min <= {a(Decimal(str(high)), 'NUMERIC(14, 2)')}")
    if low is not None:
        where.append(f"price_max >= {a(Decimal(str(low)), 'NUMERIC(14, 2)')}")
    if seen:
        where.append(f"product_id <> ALL({a(list(seen), 'BIGINT[]')})")
    where.append(f"search_vector @@ {tsquery(a, shop_id, groups, every)}")
    ordered = [f"ts_rank({WEIGHTS}, search_vector, {tsquery(a, shop_id, groups, every)}) DESC"]
    if order != "relevance":
        way = "DESC" if order == "price_desc" else "ASC"
        ordered.insert(0, f"price_min + {a(0, 'INTEGER')} {way} NULLS LAST")
    sql = (
        f"SELECT {SHOWN} FROM products WHERE {' AND '.join(where)}"
        f" ORDER BY {', '.join(ordered)}, id LIMIT {a(limit, 'INTEGER')}"
    )
    return list(await connection.fetch(sql, *a))


async def products(
    connection: asyncpg.Connection, shop_id: int, query: str, bounds: tuple[Any, Any, str]
) -> list[asyncpg.Record]:
    groups = await nearest(connection, shop_id, words(query))
    every = len(groups) > 1
    found = await ranked(connection, shop_id, groups, every, bounds, CARDS)
    if every and len(found) < CARDS:
        seen = [r["product_id"] for r in found]
        found += await ranked(connection, shop_id, groups, False, bounds, CARDS - len(found), seen)
    return found


def _money(amount: Decimal | None, currency: str | None) -> dict[str, str] | None:
    return None if amount is None else {"amount": f"{amount:.2f}", "currency_code": currency or ""}


def card(row: asyncpg.Record) -> dict[str, object]:
    variants = json.loads(row["variants"])
    variant = next((v for v in variants if v["available"]), variants[0] if variants else None)
    if variant is not None:
        price: Decimal | None = Decimal(variant["price"])
        raw = variant["compare_at_price"]
        compare = None if raw is None else Decimal(raw)
    else:
        price, compare = row["price_min"], row["compare_at_min"]
    return {
        "id": row["product_id"],
        "handle": row["handle"],
        "title": row["title"],
        "url": row["url"],
        "image": {"url": row["image_url"], "alt": row["image_alt"] or row["title"]}
        if row["image_url"]
        else None,
        "price": _money(price, row["currency"]),
        "compare_at_price": _money(compare, row["currency"])
        if compare is not None and price is not None and compare > price
        else None,
        "available": variant["available"] if variant else row["available"],
        "variant_id": variant["id"] if variant else None,
        "variant_title": variant["title"]
        if variant and variant["title"] != "Default Title"
        else None,
    }


def _tool(name: str, arguments: dict[str, object], found: Sequence[object]) -> dict[str, object]:
    return {"name": name, "arguments": json.dumps(arguments), "ok": True, "matched": bool(found)}


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


async def turn(request: Request) -> Response:
    shop = verified_shop(request.url.query)
    if shop is None:
        return JSONResponse({"error": {"code": "invalid_signature", "message": "bad"}}, 401)
    body = json.loads(await request.body())
    question = body["message"].strip()
    shop_id, reply = await baseline.open_turn(shop, body["session_id"], question)

    async def events() -> AsyncIterator[bytes]:
        yield sse("start", {"assistant_message_id": str(reply)})
        query = product_words(question)
        bounds = price_bounds(question)
        async with baseline.pool.acquire() as connection:
            hits = await policies(connection, shop_id, question)
            found: list[asyncpg.Record] = []
            answer = best_answer(
                question, [FaqItem(question=h["title"], answer=h["body"][:1500]) for h in hits]
            )
            if answer is None:
                found = await products(connection, shop_id, query, bounds)
        tools = [_tool("search_policies", {"query": question[:200]}, hits)]
        cards: list[dict[str, object]] | None = None
        if answer is not None:
            text = answer.answer
        else:
            low, high, sort = bounds
            arguments: dict[str, object] = {"query": query, "sort": sort}
            arguments |= {"min_price": low} if low is not None else {}
            arguments |= {"max_price": high} if high is not None else {}
            tools.append(_tool("search_products", arguments, found))
            text = NOTHING_FOUND
            if found:
                cards = [card(row) for row in found]
                lines = [
                    f"- {row['title']}: {describe_price(row['price_min'], row['currency'])}"
                    + ("" if row["available"] else " (sold out)")
                    for row in found
                ]
                text = "Here is what I found:\n\n" + "\n".join(lines)
        if cards is not None:
            await baseline.pool.execute(
                "UPDATE messages SET products = $1, tools = $2, updated_at = now()"
                " WHERE id = $3 AND status = 'streaming'",
                _compact(cards),
                _compact(tools),
                reply,
            )
            yield sse("products", {"assistant_message_id": str(reply), "products": cards})
        for piece in re.findall(r"\s*\S+", text):
            yield sse("delta", {"text": piece})
        matched = any(tool["matched"] for tool in tools)
        await baseline.pool.execute(
            "UPDATE messages SET content = $1, status = 'complete', finish_reason = 'stop',"
            " products = $2, tools = $3, unanswered = $4, updated_at = now() WHERE id = $5",
            text,
            _compact(cards) if cards else None,
            _compact(tools),
            None if matched else True,
            reply,
        )
        yield sse("done", {"assistant_message_id": str(reply)})

    return StreamingResponse(events(), media_type="text/event-stream")


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/turn", turn, methods=["POST"]), Route("/healthz", healthz)],
    lifespan=baseline.lifespan,
)
