"""The catalog's queries: products as webhooks and imports write them, as shoppers may see
them, and the shop's policies.

Every read a shopper's turn can reach asks for `visible` products only (active and published
on the Online Store): drafts, archived and unpublished products stay in the table so that a
later webhook can be ordered against them, and never leave it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Catalog, CatalogStagedRow, Product, ShopPolicy, utcnow
from app.models.products import ProductRecord, Variant
from app.repo.common import Executor, _rowcount, is_postgres

products: sa.Table = Product.__table__  # type: ignore[attr-defined]
policies: sa.Table = ShopPolicy.__table__  # type: ignore[attr-defined]
catalogs: sa.Table = Catalog.__table__  # type: ignore[attr-defined]
staged: sa.Table = CatalogStagedRow.__table__  # type: ignore[attr-defined]

# A deleted product's tombstone is kept this long: long enough for any late webhook.
TOMBSTONE_DAYS = 30


@dataclass(frozen=True)
class StoredProduct:
    """A visible product as a shopper's turn reads it."""

    product_id: int
    handle: str
    title: str
    description: str
    vendor: str
    product_type: str
    tags: tuple[str, ...]
    available: bool
    price_min: Decimal | None
    price_max: Decimal | None
    compare_at_min: Decimal | None
    compare_at_max: Decimal | None
    currency: str | None
    image_url: str | None
    image_alt: str | None
    url: str | None
    options: tuple[tuple[str, tuple[str, ...]], ...]
    variants: tuple[Variant, ...]

    @classmethod
    def from_row(cls, row: Any) -> StoredProduct:
        """From a row of _SHOWN's columns, by name (a SQLAlchemy or an asyncpg row)."""
        return cls(
            product_id=int(row.product_id),
            handle=str(row.handle),
            title=str(row.title),
            description=str(row.description),
            vendor=str(row.vendor),
            product_type=str(row.product_type),
            tags=tuple(json.loads(row.tags)),
            available=bool(row.available),
            price_min=_decimal(row.price_min),
            price_max=_decimal(row.price_max),
            compare_at_min=_decimal(row.compare_at_min),
            compare_at_max=_decimal(row.compare_at_max),
            currency=row.currency,
            image_url=row.image_url,
            image_alt=row.image_alt,
            url=row.url,
            options=tuple(
                (str(o["name"]), tuple(str(v) for v in o["values"]))
                for o in json.loads(row.options)
            ),
            variants=tuple(Variant.from_json(v) for v in json.loads(row.variants)),
        )


def _decimal(value: object) -> Decimal | None:
    # SQLite hands NUMERIC back as a float; money is kept to the cent.
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


_SHOWN = [
    products.c[name]
    for name in (
        "product_id",
        "handle",
        "title",
        "description",
        "vendor",
        "product_type",
        "tags",
        "available",
        "price_min",
        "price_max",
        "compare_at_min",
        "compare_at_max",
        "currency",
        "image_url",
        "image_alt",
        "url",
        "options",
        "variants",
    )
]


def _insert(session: AsyncSession) -> Any:
    """INSERT ... ON CONFLICT, which both databases speak; SQLAlchemy builds it per dialect."""
    return (postgresql.insert if is_postgres(session) else sqlite.insert)(products)


async def product_owned_elsewhere(session: AsyncSession, *, shop_id: int, product_id: int) -> bool:
    """Whether another shop holds this product id: Shopify's ids are unique across shops, so
    a webhook (whose shop is an unsigned header) naming one is not this shop's."""
    found = await session.execute(
        sa.select(products.c.shop_id)
        .where(products.c.product_id == product_id, products.c.shop_id != shop_id)
        .limit(1)
    )
    return found.first() is not None


async def store_product(
    session: AsyncSession, *, shop_id: int, record: ProductRecord, import_id: int | None = None
) -> bool:
    """Insert or update a product unless what is stored is newer (webhooks come out of order)
    or the product was deleted. Returns whether the row changed."""
    values = {**record.row(), "shop_id": shop_id, "import_id": import_id, "stored_at": utcnow()}
    statement = _insert(session).values(**values)
    changed = {k: statement.excluded[k] for k in values if k not in ("shop_id", "product_id")}
    if import_id is None:
        changed.pop("import_id")  # a webhook leaves the import's mark as it is
    statement = statement.on_conflict_do_update(
        index_elements=["shop_id", "product_id"],
        set_=changed,
        where=sa.and_(
            products.c.status != "deleted",
            products.c.shopify_updated_at <= statement.excluded.shopify_updated_at,
        ),
    )
    return bool(_rowcount(await session.execute(statement)))


async def delete_product(session: AsyncSession, *, shop_id: int, product_id: int) -> None:
    """A products/delete: the row becomes a tombstone, emptied of the product's content, so a
    late update or an import that read the product earlier cannot bring it back."""
    now = utcnow()
    tombstone = {
        "shop_id": shop_id,
        "product_id": product_id,
        "handle": "",
        "title": "",
        "description": "",
        "vendor": "",
        "product_type": "",
        "tags": "[]",
        "status": "deleted",
        "published": False,
        "visible": False,
        "available": False,
        "price_min": None,
        "price_max": None,
        "compare_at_min": None,
        "compare_at_max": None,
        "image_url": None,
        "image_alt": None,
        "url": None,
        "options": "[]",
        "variants": "[]",
        "shopify_updated_at": now,
        "stored_at": now,
    }
    statement = _insert(session).values(**tombstone)
    statement = statement.on_conflict_do_update(
        index_elements=["shop_id", "product_id"],
        set_={k: statement.excluded[k] for k in tombstone if k not in ("shop_id", "product_id")},
    )
    await session.execute(statement)


async def visible_product(
    session: Executor, *, shop_id: int, handle: str | None = None, product_id: int | None = None
) -> StoredProduct | None:
    """One product a shopper could see, by its handle or its id; None if there is none."""
    where = [products.c.shop_id == shop_id, products.c.visible.is_(True)]
    if handle is not None:
        where.append(products.c.handle == handle)
    elif product_id is not None:
        where.append(products.c.product_id == product_id)
    else:
        return None
    row = (await session.execute(sa.select(*_SHOWN).where(*where).limit(1))).first()
    return None if row is None else StoredProduct.from_row(row)


async def visible_products(
    session: AsyncSession, *, shop_id: int, product_ids: Sequence[int]
) -> list[StoredProduct]:
    """The visible ones of these products, in the order asked."""
    if not product_ids:
        return []
    rows = await session.execute(
        sa.select(*_SHOWN).where(
            products.c.shop_id == shop_id,
            products.c.visible.is_(True),
            products.c.product_id.in_(list(product_ids)),
        )
    )
    found = {p.product_id: p for p in map(StoredProduct.from_row, rows.all())}
    return [found[i] for i in product_ids if i in found]


async def visible_product_list(
    session: AsyncSession, *, shop_id: int, limit: int = 250
) -> list[StoredProduct]:
    """The products a shopper could see, in the order the shop created them (a listing)."""
    rows = await session.execute(
        sa.select(*_SHOWN)
        .where(products.c.shop_id == shop_id, products.c.visible.is_(True))
        .order_by(products.c.product_id)
        .limit(limit)
    )
    return [StoredProduct.from_row(row) for row in rows.all()]


async def count_visible(session: AsyncSession, *, shop_id: int) -> int:
    counted = await session.execute(
        sa.select(sa.func.count()).where(
            products.c.shop_id == shop_id, products.c.visible.is_(True)
        )
    )
    return int(counted.scalar_one())


async def catalog_presence(session: Executor, *, shop_id: int) -> tuple[bool, bool]:
    """Whether the shop has visible products, and policies: the tools worth offering."""
    has_products = sa.exists().where(products.c.shop_id == shop_id, products.c.visible.is_(True))
    has_policies = sa.exists().where(policies.c.shop_id == shop_id)
    row = (await session.execute(sa.select(has_products, has_policies))).one()
    return bool(row[0]), bool(row[1])


async def drop_catalog(session: AsyncSession, *, shop_id: int) -> None:
    """An uninstall: the shop's products, policies, staged rows and import state go."""
    for table in (products, policies, staged, catalogs):
        await session.execute(sa.delete(table).where(table.c.shop_id == shop_id))


async def catalog_of(session: AsyncSession, *, shop_id: int) -> Catalog | None:
    return await session.get(Catalog, shop_id)


async def describe_catalog(
    session: AsyncSession,
    *,
    shop_id: int,
    currency: str | None,
    storefront_url: str | None,
    language: str | None,
) -> None:
    """What the shop's prices and links are made of, creating its catalog row if it has none
    (in one statement, so that two workers doing it at once both succeed)."""
    values = {"currency": currency, "storefront_url": storefront_url, "language": language}
    insert = (postgresql.insert if is_postgres(session) else sqlite.insert)(catalogs)
    # A new row's import state as the model's defaults have it (the table has none of its own).
    fresh = {"import_id": 0, "status": "pending", "products_done": 0, "attempts": 0}
    statement = insert.values(shop_id=shop_id, **fresh, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["shop_id"], set_={k: statement.excluded[k] for k in values}
        )
    )


async def replace_policies(
    session: AsyncSession, *, shop_id: int, entries: Sequence[tuple[str, str, str, str | None]]
) -> None:
    """The shop's policies as an import read them: (kind, title, body as text, url)."""
    await session.execute(sa.delete(policies).where(policies.c.shop_id == shop_id))
    if entries:
        await session.execute(
            sa.insert(policies),
            [
                {"shop_id": shop_id, "kind": kind, "title": title, "body": body, "url": url}
                for kind, title, body, url in entries
            ],
        )


@dataclass(frozen=True)
class Policy:
    kind: str
    title: str
    body: str
    url: str | None


async def shop_policies(session: AsyncSession, *, shop_id: int) -> list[Policy]:
    rows = await session.execute(
        sa.select(policies.c.kind, policies.c.title, policies.c.body, policies.c.url)
        .where(policies.c.shop_id == shop_id)
        .order_by(policies.c.kind)
    )
    return [Policy(*row) for row in rows.all()]


__all__ = [
    "Policy",
    "StoredProduct",
    "catalog_of",
    "catalog_presence",
    "count_visible",
    "delete_product",
    "describe_catalog",
    "drop_catalog",
    "product_owned_elsewhere",
    "replace_policies",
    "shop_policies",
    "store_product",
    "visible_product",
    "visible_product_list",
    "visible_products",
]
