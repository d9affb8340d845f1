"""The tools the assistant may call, over this shop's catalog, policies and FAQ.

A tool's arguments are written by a model and are input like any other: invalid JSON, an
unknown tool, a wrong type or a value out of range is an error result the model reads (and
may correct), never an exception. Results carry only what a shopper could see (the search
reads visible products only), and the cards of a reply are built from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app import repo, search
from app.ai import ToolCall, ToolResult, ToolSpec
from app.assistant.cards import MAX_CARDS, best_variant, card, summary
from app.db import Database
from app.errors import BadRequest
from app.validation import parse_json

MAX_QUERY = 200
MAX_PRICE = Decimal("1000000000")
SORTS = ("relevance", "price_asc", "price_desc")

SEARCH_PRODUCTS = ToolSpec(
    name="search_products",
    description=(
        "Search this shop's products by words (name, type, colour, size, material...), "
        "optionally within a price range and in stock only. Returns products with their "
        "prices, variants and stock; quote prices and availability only from here."
    ),
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "maxLength": MAX_QUERY, "description": "Search words"},
            "min_price": {"type": "number", "minimum": 0},
            "max_price": {"type": "number", "minimum": 0},
            "available_only": {"type": "boolean"},
            "product_type": {"type": "string", "maxLength": 255},
            "sort": {"type": "string", "enum": list(SORTS)},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
)
GET_PRODUCT = ToolSpec(
    name="get_product",
    description="One product of this shop by its handle (or id): variants, prices and stock.",
    parameters={
        "type": "object",
        "properties": {
            "handle": {"type": "string", "maxLength": 255},
            "id": {"type": "integer"},
            "options": {
                "type": "object",
                "description": 'The variant asked about, e.g. {"Size": "M"}: its card adds it',
                "additionalProperties": {"type": "string", "maxLength": 255},
            },
        },
        "additionalProperties": False,
    },
)
SEARCH_POLICIES = ToolSpec(
    name="search_policies",
    description=(
        "Search this shop's policies (shipping, refunds, privacy, terms, contact) and its "
        "FAQ. Use it for questions about delivery, returns, payment or the shop itself."
    ),
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string", "maxLength": MAX_QUERY}},
        "required": ["query"],
        "additionalProperties": False,
    },
)
HAND_OVER = ToolSpec(
    name="hand_over_to_person",
    description=(
        "Hand the conversation to a person from the shop's team. Use it when the shopper asks "
        "for a person, when the question is about an existing order or a complaint, or when "
        "you cannot help. Afterwards tell the shopper that a person will answer here; if the "
        "result says nobody is online, say so and that they may leave an email address."
    ),
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
)
ALL = (SEARCH_PRODUCTS, GET_PRODUCT, SEARCH_POLICIES, HAND_OVER)


class ToolArgumentError(Exception):
    pass


@dataclass
class Outcome:
    """A tool's result for the model, and the cards it adds to the reply."""

    result: ToolResult
    cards: list[dict[str, object]] = field(default_factory=list)
    matched: bool = False  # whether it found anything (for the merchant's unanswered list)


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = parse_json(text.encode("utf-8") if text.strip() else b"{}")
    except BadRequest as exc:
        raise ToolArgumentError("The arguments are not valid JSON.") from exc
    if not isinstance(value, dict):
        raise ToolArgumentError("The arguments are a JSON object.")
    return value


def _text(args: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise ToolArgumentError(f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise ToolArgumentError(f"{name} is a string.")
    return value[:limit]


def _price(args: dict[str, Any], name: str) -> Decimal | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ToolArgumentError(f"{name} is a number.")
    try:
        number = float(value)
    except ValueError as exc:
        raise ToolArgumentError(f"{name} is a number.") from exc
    if not math.isfinite(number) or number < 0 or number > MAX_PRICE:
        raise ToolArgumentError(f"{name} is a price between 0 and {MAX_PRICE}.")
    return Decimal(str(round(number, 2)))


def _flag(args: dict[str, Any], name: str) -> bool | None:
    value = args.get(name)
    if value is not None and not isinstance(value, bool):
        raise ToolArgumentError(f"{name} is true or false.")
    return value


def _error(call: ToolCall, message: str) -> Outcome:
    content = json.dumps({"error": message})
    return Outcome(ToolResult(call.id, call.name, content, is_error=True))


class Toolbox:
    """The tools, run against one shop's data."""

    def __init__(
        self,
        db: Database,
        shop_id: int,
        offered: Sequence[str] | None = None,
        hand_over: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.db = db
        self.shop_id = shop_id
        self.offered = tuple(offered) if offered is not None else tuple(s.name for s in ALL)
        # Hands the conversation over and says whether anyone of the team is online.
        self.hand_over = hand_over

    async def run(self, call: ToolCall) -> Outcome:
        if call.name not in self.offered:
            names = ", ".join(self.offered)
            return _error(
                call, f"There is no tool called {call.name[:100]!r}; the tools are {names}."
            )
        try:
            args = _arguments(call.arguments)
            if call.name == SEARCH_PRODUCTS.name:
                return await self._search_products(call, args)
            if call.name == GET_PRODUCT.name:
                return await self._get_product(call, args)
            if call.name == SEARCH_POLICIES.name:
                return await self._search_policies(call, args)
            if call.name == HAND_OVER.name:
                return await self._hand_over(call)
        except ToolArgumentError as exc:
            return _error(call, str(exc))
        raise AssertionError(f"offered a tool that does not exist: {call.name}")

    async def _hand_over(self, call: ToolCall) -> Outcome:
        if self.hand_over is None:
            return _error(call, "This conversation cannot be handed over.")
        online = await self.hand_over()
        result = {"handed_over": True, "team_online": online}
        return Outcome(ToolResult(call.id, call.name, json.dumps(result)), matched=True)

    async def _search_products(self, call: ToolCall, args: dict[str, Any]) -> Outcome:
        sort = _text(args, "sort", 20) or "relevance"
        if sort not in SORTS:
            raise ToolArgumentError(f"sort is one of {', '.join(SORTS)}.")
        available = _flag(args, "available_only")
        # Reads only, each statement on its own: no transaction (and on PostgreSQL, asyncpg).
        async with self.db.connection() as session:
            found = await search.search_products(
                session,
                shop_id=self.shop_id,
                query=_text(args, "query", MAX_QUERY, required=True) or "",
                min_price=_price(args, "min_price"),
                max_price=_price(args, "max_price"),
                available=True if available else None,
                product_type=_text(args, "product_type", 255),
                order=sort,
                limit=MAX_CARDS,
            )
        content = json.dumps({"products": [summary(p) for p in found]})
        return Outcome(
            ToolResult(call.id, call.name, content),
            cards=[card(p) for p in found],
            matched=bool(found),
        )

    async def _get_product(self, call: ToolCall, args: dict[str, Any]) -> Outcome:
        handle = _text(args, "handle", 255)
        ident = args.get("id")
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int)):
            raise ToolArgumentError("id is an integer.")
        if handle is None and ident is None:
            raise ToolArgumentError("Give the product's handle or id.")
        if ident is not None and not 0 < ident < 2**63:
            return _error(call, "No product of this shop has that id.")
        async with self.db.session() as session:
            product = await repo.visible_product(
                session, shop_id=self.shop_id, handle=handle, product_id=ident
            )
        if product is None:
            return _error(call, "No product of this shop has that handle or id.")
        wanted = args.get("options") or {}
        if not isinstance(wanted, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in wanted.items()
        ):
            raise ToolArgumentError("options is an object of option names and values.")
        variant = best_variant(product, {k[:255]: v[:255] for k, v in list(wanted.items())[:3]})
        content = json.dumps({"product": summary(product)})
        return Outcome(
            ToolResult(call.id, call.name, content), [card(product, variant)], matched=True
        )

    async def _search_policies(self, call: ToolCall, args: dict[str, Any]) -> Outcome:
        query = _text(args, "query", MAX_QUERY, required=True) or ""
        async with self.db.connection() as session:
            hits = await search.search_knowledge(session, shop_id=self.shop_id, query=query)
        content = json.dumps(
            {
                "results": [
                    {"kind": h.kind, "title": h.title, "text": h.body[:1500], "url": h.url}
                    for h in hits
                ]
            }
        )
        return Outcome(ToolResult(call.id, call.name, content), matched=bool(hits))
