"""The catalog search a shopper's turn calls: products by what the shopper asks for ("merino
in medium", "cheapest under $30"), and the policy or FAQ entry that answers a question.

Whatever the query holds, a search answers with results or with none: it is cut to 200
characters and read as words (app/search_terms.py); no part of it reaches a database as
syntax. Only products a shopper can see, of the shop asked for, are ever returned.
"""

from __future__ import annotations

from decimal import Decimal

from app import repo
from app.repo.catalog_search import ORDERS, KnowledgeHit
from app.repo.common import Executor
from app.search_terms import words

MAX_PRODUCTS = 20
MAX_KNOWLEDGE = 10


def _bounded(limit: int, most: int) -> int:
    return max(1, min(int(limit), most))


def _price(value: Decimal | None) -> Decimal | None:
    """A price filter that is not a finite number filters nothing."""
    return value if value is not None and value.is_finite() else None


async def search_products(
    session: Executor,
    *,
    shop_id: int,
    query: str,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    available: bool | None = None,
    product_type: str | None = None,
    order: str = "relevance",
    limit: int = 5,
) -> list[repo.StoredProduct]:
    """The shop's visible products for a shopper's query, best first (or by price).

    An empty query is a listing by the filters alone; an empty query with no filter and no
    price order finds nothing, as a query of punctuation alone does."""
    if order not in ORDERS:
        raise ValueError(f"order is one of {', '.join(ORDERS)}, not {order!r}")
    found = words(query)
    min_price, max_price = _price(min_price), _price(max_price)
    filtered = (min_price, max_price, available, product_type or None) != (None,) * 4
    if not found and not filtered and order == "relevance":
        return []
    return await repo.find_products(
        session,
        shop_id=shop_id,
        words=found,
        min_price=min_price,
        max_price=max_price,
        available=available,
        product_type=(product_type or "")[:255] or None,
        order=order,
        limit=_bounded(limit, MAX_PRODUCTS),
    )


async def search_knowledge(
    session: Executor, *, shop_id: int, query: str, limit: int = 3
) -> list[KnowledgeHit]:
    """The shop's policies and FAQ entries that best answer a shopper's question."""
    return await repo.find_knowledge(
        session, shop_id=shop_id, words=words(query), limit=_bounded(limit, MAX_KNOWLEDGE)
    )


__all__ = ["KnowledgeHit", "search_knowledge", "search_products"]
