"""What a catalog import writes: the rows it has read, staged until it has read them all,
then put in place in one transaction (app/catalog/sync.py), and what it did not see removed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import aware, utcnow
from app.models.products import ProductRecord
from app.repo.catalog import TOMBSTONE_DAYS, _insert, products, staged
from app.repo.common import _rowcount, is_postgres


async def store_products(
    session: AsyncSession, *, shop_id: int, records: Sequence[ProductRecord], import_id: int
) -> None:
    """An import's store_product for many products (an import writes 100,000 of them in its
    last transaction), under the same rule: a newer stored row or a tombstone wins. One
    statement run for every row: compiled once, where a VALUES list of each batch's length
    would be compiled again for every batch."""
    if not records:
        return
    now = utcnow()
    rows = [
        {**record.row(), "shop_id": shop_id, "import_id": import_id, "stored_at": now}
        for record in {r.product_id: r for r in records}.values()  # one row per product
    ]
    columns = list(rows[0])
    if is_postgres(session):
        await _store_by_copy(session, columns, rows)
        return
    statement = _insert(session)
    changed = {k: statement.excluded[k] for k in columns if k not in ("shop_id", "product_id")}
    statement = statement.on_conflict_do_update(
        index_elements=["shop_id", "product_id"],
        set_=changed,
        where=sa.and_(
            products.c.status != "deleted",
            products.c.shopify_updated_at <= statement.excluded.shopify_updated_at,
        ),
    )
    await session.execute(statement, rows)


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, in the session's transaction."""
    connection = await session.connection()
    await connection.execute(sa.text("SELECT 1"))  # the transaction has begun on it
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def _store_by_copy(
    session: AsyncSession, columns: list[str], rows: list[dict[str, object]]
) -> None:
    """PostgreSQL: the rows COPY into a temporary table of this transaction, then one
    INSERT ... SELECT ... ON CONFLICT puts them in place (an executemany of the upsert costs
    a statement per product)."""
    names = ", ".join(columns)
    await session.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS import_products ON COMMIT DROP AS "
            f"SELECT {names} FROM products WITH NO DATA"
        )
    )
    await session.execute(sa.text("TRUNCATE import_products"))
    driver = await _driver(session)
    await driver.copy_records_to_table(
        "import_products", records=[[row[c] for c in columns] for row in rows], columns=columns
    )
    updates = ", ".join(
        f"{c} = excluded.{c}" for c in columns if c not in ("shop_id", "product_id")
    )
    await session.execute(
        sa.text(
            f"INSERT INTO products ({names}) SELECT {names} FROM import_products "
            f"ON CONFLICT (shop_id, product_id) DO UPDATE SET {updates} "
            "WHERE products.status != 'deleted' "
            "AND products.shopify_updated_at <= excluded.shopify_updated_at"
        )
    )


async def stage(
    session: AsyncSession,
    *,
    shop_id: int,
    import_id: int,
    rows: Iterable[tuple[str, int, dict[str, Any] | str]],
) -> int:
    """Keep what an import read, (kind, product id, node), until the import finishes. A node
    may come as its JSON text already (a bulk file's line), kept as it is."""
    values = [
        {
            "shop_id": shop_id,
            "import_id": import_id,
            "kind": kind,
            "product_id": product_id,
            "data": node if isinstance(node, str) else json.dumps(node, separators=(",", ":")),
        }
        for kind, product_id, node in rows
    ]
    if values and is_postgres(session):
        # COPY: an import stages hundreds of thousands of lines, several times faster so.
        driver = await _driver(session)
        columns = ["shop_id", "import_id", "kind", "product_id", "data"]
        await driver.copy_records_to_table(
            "catalog_staged_rows",
            records=[[v[c] for c in columns] for v in values],
            columns=columns,
        )
    elif values:
        await session.execute(sa.insert(staged), values)
    return len(values)


async def staged_batch(
    session: AsyncSession, *, shop_id: int, import_id: int, after: int, limit: int
) -> list[tuple[int, dict[str, Any], list[dict[str, Any]]]]:
    """The next staged products after this product id, each with its staged variants."""
    heads = await session.execute(
        sa.select(staged.c.product_id, staged.c.data)
        .where(
            staged.c.shop_id == shop_id,
            staged.c.import_id == import_id,
            staged.c.kind == "product",
            staged.c.product_id > after,
        )
        .order_by(staged.c.product_id)
        .limit(limit)
    )
    batch = [(int(pid), json.loads(data)) for pid, data in heads.all()]
    if not batch:
        return []
    variants: dict[int, list[dict[str, Any]]] = {pid: [] for pid, _ in batch}
    rows = await session.execute(
        sa.select(staged.c.product_id, staged.c.data)
        .where(
            staged.c.shop_id == shop_id,
            staged.c.import_id == import_id,
            staged.c.kind == "variant",
            # A range, which the index answers: the batch is the next product ids in order.
            # (An IN list is only a filter there, over every staged variant of the import.)
            staged.c.product_id.between(batch[0][0], batch[-1][0]),
        )
        .order_by(staged.c.id)
    )
    for pid, data in rows.all():
        if int(pid) in variants:  # not a variant whose product was never staged
            variants[int(pid)].append(json.loads(data))
    return [(pid, node, variants[pid]) for pid, node in batch]


async def mark_seen(
    session: AsyncSession, *, shop_id: int, import_id: int, product_ids: Sequence[int]
) -> None:
    """The import read these products (stored or not, being older than a webhook's write)."""
    if product_ids:
        await session.execute(
            sa.update(products)
            .where(
                products.c.shop_id == shop_id,
                products.c.product_id.in_(list(product_ids)),
                products.c.status != "deleted",
            )
            .values(import_id=import_id)
        )


async def remove_unseen(
    session: AsyncSession, *, shop_id: int, import_id: int, started_at: datetime
) -> int:
    """After a complete import: products it did not read and no webhook has written since it
    began are gone from the shop; old tombstones and the import's staged rows go too. What
    it read is what it marked seen or still has staged (so one statement, not an UPDATE of
    every product, can tell what it read)."""
    mine = products.c.shop_id == shop_id
    read = sa.exists().where(
        staged.c.shop_id == shop_id,
        staged.c.import_id == import_id,
        staged.c.kind == "product",
        staged.c.product_id == products.c.product_id,
    )
    removed = await session.execute(
        sa.delete(products).where(
            mine,
            products.c.status != "deleted",
            sa.or_(products.c.import_id.is_(None), products.c.import_id != import_id),
            products.c.stored_at < started_at,
            ~read,
        )
    )
    await session.execute(
        sa.delete(products).where(
            mine,
            products.c.status == "deleted",
            products.c.stored_at < aware(started_at) - timedelta(days=TOMBSTONE_DAYS),
        )
    )
    await session.execute(
        sa.delete(staged).where(staged.c.shop_id == shop_id, staged.c.import_id == import_id)
    )
    return _rowcount(removed)


__all__ = ["mark_seen", "remove_unseen", "stage", "staged_batch", "store_products"]
