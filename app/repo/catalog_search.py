"""The catalog search's queries: a shop's visible products, and its policies and FAQ entries,
found by the words a shopper typed in the database's own full-text indexes (migration 0011).

PostgreSQL ranks with ts_rank over a weighted tsvector in the shop's language; SQLite with
FTS5's bm25. A word under which the shop has nothing as typed is taken for a misspelling
("sweter") and searched as the shop's words nearest to it by edit distance too: on PostgreSQL
from its words (catalog_terms, by trigrams), on SQLite from the index's terms (fts5vocab). A
word the shop has is never widened: "shirt" never brings skirts.
Words reach the database as bound values or as quoted FTS5 strings, never as syntax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, reduce
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from app.repo.catalog import _SHOWN, StoredProduct, products
from app.repo.common import Executor, is_postgres
from app.search_terms import allowed_edits, closest

ORDERS = ("relevance", "price_asc", "price_desc")
# bm25's column weights on SQLite, in products_fts's column order: the shop (no weight),
# title, product type, vendor, tags, option values, description.
_PRODUCT_WEIGHTS = (0.0, 10.0, 4.0, 3.0, 2.0, 2.0, 1.0)
_PRODUCT_TEXT = "{title product_type vendor tags options description}"
# ts_rank's weights of D, C, B, A on PostgreSQL (description ... title).
_PG_WEIGHTS: Any = sa.literal_column("'{0.1, 0.3, 0.6, 1.0}'::float4[]")

knowledge_entries = sa.table(
    "knowledge_entries",
    *(sa.column(n) for n in ("shop_id", "kind", "title", "body", "url", "search_vector")),
)
catalog_terms = sa.table("catalog_terms", sa.column("shop_id"), sa.column("term"))


@dataclass(frozen=True)
class KnowledgeHit:
    """A policy or FAQ entry that answers a search; `score` is higher for a better answer and
    compares only with the other hits of the same search."""

    kind: str  # "faq", or the policy's kind: refund, shipping, privacy, terms, contact
    title: str  # the FAQ question, or the policy's title
    body: str
    url: str | None
    score: float


def _price_order(order: str, *, indexed: bool = True) -> list[Any]:
    price: Any = products.c.price_min  # the "from" price both ways: what a product's card shows
    if not indexed:
        # Found products are sorted, not found by walking the price index: PostgreSQL would
        # walk it for a rare match, reading (and testing) most of the shop's rows.
        price = price + 0
    first = price.desc() if order == "price_desc" else price.asc()
    return [first.nulls_last()]


async def find_products(
    session: Executor,
    *,
    shop_id: int,
    words: Sequence[str],
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    available: bool | None = None,
    product_type: str | None = None,
    order: str = "relevance",
    limit: int = 5,
) -> list[StoredProduct]:
    """The shop's visible products that match these words and the filters: those with every
    word first, then (to make up the limit) those with some; with no words, those of the
    filters, cheapest first unless ordered. Ranking only the products that have every word
    spares ranking every product that has a common one ("medium")."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}")
    values: dict[str, Any] = {"shop_id": shop_id, "limit": limit}
    if max_price is not None:
        values["max_price"] = max_price
    if min_price is not None:
        values["min_price"] = min_price
    if product_type:
        values["product_type"] = product_type.lower()
    filters = _Filters(tuple(k for k in _FILTERS if k in values), available)
    if not words:
        listing = _listing(filters, order)
        return [StoredProduct.from_row(r) for r in (await session.execute(listing, values))]
    if is_postgres(session):
        groups = await _pg_terms(session, shop_id, words)
    else:
        groups = await _sqlite_terms(session, shop_id, words, "products_fts", _PRODUCT_TEXT)
    every = len(groups) > 1
    found = await _ranked(session, groups, every, filters, order, values)
    if every and len(found) < limit:
        seen = [p.product_id for p in found]
        found += await _ranked(
            session, groups, False, filters, order, {**values, "limit": limit - len(found)}, seen
        )
    return found


# The statements are built once for each shape of search (how many words and alternatives,
# which filters, which order) and take the values as parameters: building one per search
# cost SQLAlchemy more CPU than a whole turn of the hand-written baseline (bench/). On
# PostgreSQL the shop's turns then run them straight on asyncpg (app/pgfast.py).
_FILTERS = ("max_price", "min_price", "product_type")


@dataclass(frozen=True)
class _Filters:
    present: tuple[str, ...]  # those of _FILTERS given, each a parameter of that name
    available: bool | None


def _where(filters: _Filters) -> list[Any]:
    where: list[Any] = [
        products.c.shop_id == sa.bindparam("shop_id"),
        products.c.visible.is_(True),
    ]
    if "max_price" in filters.present:
        where.append(products.c.price_min <= sa.bindparam("max_price"))  # its cheapest variant
    if "min_price" in filters.present:
        where.append(products.c.price_max >= sa.bindparam("min_price"))
    if filters.available is not None:
        where.append(products.c.available.is_(filters.available))
    if "product_type" in filters.present:
        where.append(sa.func.lower(products.c.product_type) == sa.bindparam("product_type"))
    return where


@lru_cache(maxsize=64)
def _listing(filters: _Filters, order: str) -> Any:
    return (
        sa.select(*_SHOWN)
        .where(*_where(filters))
        .order_by(*_price_order(order), products.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )


def _word_values(groups: list[list[str]]) -> dict[str, str]:
    return {f"w{g}_{i}": word for g, group in enumerate(groups) for i, word in enumerate(group)}


def _shape(groups: list[list[str]]) -> tuple[int, ...]:
    return tuple(len(group) for group in groups)


async def _ranked(
    session: Executor,
    groups: list[list[str]],
    every: bool,
    filters: _Filters,
    order: str,
    values: dict[str, Any],
    seen: Sequence[int] = (),
) -> list[StoredProduct]:
    """Products with every group of words (or any), best or cheapest first."""
    if is_postgres(session):
        query = _pg_ranked(_shape(groups), every, filters, order, bool(seen))
        values = {**values, **_word_values(groups)} | ({"seen": list(seen)} if seen else {})
    else:
        fts = sa.table("products_fts", sa.column("rowid"))
        match = _fts_match(values["shop_id"], _PRODUCT_TEXT, groups, every)
        score = sa.func.bm25(sa.literal_column("products_fts"), *_PRODUCT_WEIGHTS)
        where = _where(filters)
        if seen:
            where.append(products.c.product_id.notin_(list(seen)))
        query = (
            sa.select(*_SHOWN)
            .select_from(fts.join(products, products.c.id == fts.c.rowid))
            .where(sa.literal_column("products_fts").op("MATCH")(match), *where)
        )
        ordered = [score, products.c.id]  # bm25: lower is better
        if order != "relevance":
            ordered = [*_price_order(order, indexed=False), *ordered]
        query = query.order_by(*ordered).limit(sa.bindparam("limit", type_=sa.Integer))
    rows = await session.execute(query, values)
    return [StoredProduct.from_row(row) for row in rows.all()]


# ---- PostgreSQL ------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _pg_ranked(
    shape: tuple[int, ...], every: bool, filters: _Filters, order: str, unseen: bool
) -> Any:
    vector = products.c.search_vector
    score = sa.func.ts_rank(_PG_WEIGHTS, vector, _tsquery(shape, every))
    where = _where(filters)
    if unseen:
        where.append(
            products.c.product_id != sa.all_(sa.bindparam("seen", type_=ARRAY(sa.BigInteger)))
        )
    ordered = [score.desc(), products.c.id]
    if order != "relevance":
        ordered = [*_price_order(order, indexed=False), *ordered]
    query = sa.select(*_SHOWN).where(*where, vector.op("@@")(_tsquery(shape, every)))
    return query.order_by(*ordered).limit(sa.bindparam("limit", type_=sa.Integer))


def _tsquery(shape: tuple[int, ...], every: bool = False) -> Any:
    """Every group (or any), a group being any of its words (parameters w{group}_{word}),
    each stemmed in the shop's language; computed once for the statement."""
    shop = sa.bindparam("shop_id", type_=sa.BigInteger)
    config = sa.select(sa.func.shop_search_config(shop).label("config")).subquery()

    def any_of(group: int, size: int) -> Any:
        words = [sa.bindparam(f"w{group}_{i}", type_=sa.String) for i in range(size)]
        queries: list[Any] = [sa.func.plainto_tsquery(config.c.config, w) for w in words]
        return reduce(lambda a, b: a.op("||")(b), queries)

    joined = reduce(
        lambda a, b: a.op("&&" if every else "||")(b), [any_of(g, n) for g, n in enumerate(shape)]
    )
    return sa.select(joined).scalar_subquery()


def _pg_candidate(term: Any, i: int) -> Any:
    """Whether a shop's word could be what misspelt word w{i} was meant to be; edit distance
    then decides, as on SQLite. Trigram similarity (the index's `%`, at its default 0.3) misses
    a swap of letters in a short word ("mernio" is 0.27 of "merino"): the words of the same
    first three letters (from{i} up to to{i}) are asked for too, a range of the primary key."""
    word = sa.bindparam(f"w{i}", type_=sa.String)
    following = sa.bindparam(f"to{i}", type_=sa.String)
    return sa.or_(
        term.op("%")(word),
        sa.and_(term >= sa.bindparam(f"from{i}", type_=sa.String), term < following),
    )


def _could_be_misspelt(word: str) -> bool:
    return bool(allowed_edits(word)) and not any(c.isdigit() for c in word)


async def _pg_terms(session: Executor, shop_id: int, words: Sequence[str]) -> list[list[str]]:
    """Each word with, if the shop has no such word, the shop's nearest words.

    Whether it has is asked of catalog_terms, not of the products: an EXISTS over products
    is planned as a walk of the shop's rows that stops at the first match, all of them for
    a word nobody has (80 ms at 100,000 products in bench/)."""
    groups = [[w] for w in words]
    fuzzy = [w for w in words if _could_be_misspelt(w)]
    if not fuzzy:
        return groups
    asked = {f"w{i}": w for i, w in enumerate(fuzzy)}
    found = (await session.execute(_pg_known(len(fuzzy)), {"shop_id": shop_id, **asked})).one()
    unknown = [w for w, known in zip(fuzzy, found, strict=True) if not known]
    if not unknown:
        return groups
    values: dict[str, Any] = {"shop_id": shop_id}
    for i, word in enumerate(unknown):
        prefix = word[:3]
        values |= {
            f"w{i}": word,
            f"from{i}": prefix,
            f"to{i}": prefix[:-1] + chr(ord(prefix[-1]) + 1),
        }
    candidates: list[list[tuple[str, int]]] = [[] for _ in unknown]
    for i, candidate in (await session.execute(_pg_near(len(unknown)), values)).all():
        candidates[int(i)].append((str(candidate), 0))
    for word, near_terms in zip(unknown, candidates, strict=True):
        groups[words.index(word)] += closest(word, near_terms)
    return groups


@lru_cache(maxsize=16)
def _pg_known(count: int) -> Any:
    """Whether the shop has each of `count` words (parameters w0, w1...)."""
    return sa.select(
        *(
            sa.exists()
            .where(
                catalog_terms.c.shop_id == sa.bindparam("shop_id"),
                catalog_terms.c.term == sa.bindparam(f"w{i}", type_=sa.String),
            )
            .label(f"w{i}")
            for i in range(count)
        )
    )


@lru_cache(maxsize=16)
def _pg_near(count: int) -> Any:
    """The shop's words that could be what each of `count` misspelt words was meant to be."""
    term = catalog_terms.c.term
    return sa.union_all(
        *(
            sa.select(sa.literal(i).label("word"), term).where(
                catalog_terms.c.shop_id == sa.bindparam("shop_id"), _pg_candidate(term, i)
            )
            for i in range(count)
        )
    )


@lru_cache(maxsize=64)
def _pg_knowledge(shape: tuple[int, ...]) -> Any:
    k = knowledge_entries.c
    score = sa.func.ts_rank(_PG_WEIGHTS, k.search_vector, _tsquery(shape))
    return (
        sa.select(k.kind, k.title, k.body, k.url, score.label("score"))
        .where(k.shop_id == sa.bindparam("shop_id"), k.search_vector.op("@@")(_tsquery(shape)))
        .order_by(score.desc(), k.kind, k.title)
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )


# ---- SQLite ----------------------------------------------------------------------------------


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _fts_match(shop_id: int, columns: str, groups: list[list[str]], every: bool = False) -> str:
    """A MATCH for every group (or any) in these columns, of this shop's rows only."""
    joined = (" AND " if every else " OR ").join(
        "(" + " OR ".join(map(_quoted, group)) + ")" for group in groups
    )
    return f"shop_id : {_quoted(str(shop_id))} AND {columns} : ({joined})"


async def _sqlite_terms(
    session: Executor, shop_id: int, words: Sequence[str], table: str, columns: str
) -> list[list[str]]:
    """Each word with, if the shop has nothing under it, the index's nearest terms.

    The vocabulary (fts5vocab) is of every shop in the table: a nearest term that is another
    shop's finds nothing here, so a few are kept."""
    groups = [[w] for w in words]
    for group in groups:
        word = group[0]
        limit = allowed_edits(word)
        if not _could_be_misspelt(word):
            continue
        known = await session.execute(
            sa.text(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {table} MATCH :match)"),
            {"match": _fts_match(shop_id, columns, [[word]])},
        )
        if known.one()[0]:
            continue
        # Those of its first letter and about its length: a scan of part of the index's terms
        # in C; only they reach the edit distance in Python.
        candidates = await session.execute(
            sa.text(
                f"SELECT term, doc FROM {table}_vocab WHERE term >= :low AND term < :high"
                " AND length(term) BETWEEN :shortest AND :longest"
            ),
            {
                "low": word[0],
                "high": chr(ord(word[0]) + 1),
                "shortest": len(word) - limit,
                "longest": len(word) + limit,
            },
        )
        group += closest(word, [tuple(r) for r in candidates.all()], keep=5)
    return groups


# ---- Policies and FAQ entries ----------------------------------------------------------------


async def find_knowledge(
    session: Executor, *, shop_id: int, words: Sequence[str], limit: int = 3
) -> list[KnowledgeHit]:
    """The shop's policies and FAQ entries that best match these words."""
    if not words:
        return []
    if is_postgres(session):
        groups = await _pg_terms(session, shop_id, words)
        values = {"shop_id": shop_id, "limit": limit, **_word_values(groups)}
        rows = (await session.execute(_pg_knowledge(_shape(groups)), values)).all()
        return [KnowledgeHit(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]
    groups = await _sqlite_terms(session, shop_id, words, "knowledge_fts", "{title body}")
    rows = (
        await session.execute(
            sa.text(
                "SELECT kind, title, body, url, bm25(knowledge_fts, 0.0, 3.0, 1.0) AS rank"
                " FROM knowledge_fts WHERE knowledge_fts MATCH :match"
                " ORDER BY rank, rowid LIMIT :limit"
            ),
            {"match": _fts_match(shop_id, "{title body}", groups), "limit": limit},
        )
    ).all()
    return [KnowledgeHit(r[0], r[1], r[2], r[3], -float(r[4])) for r in rows]


__all__ = ["ORDERS", "KnowledgeHit", "find_knowledge", "find_products"]
