"""Tables of the shop's catalog: its products as a shopper can see them, its policies, and the
state of its import from Shopify."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from app.models.common import BigId, utcnow

# A product's status as Shopify gives it, and "deleted": what a products/delete webhook leaves
# behind, so that a late update or an import that read the product before cannot bring it back.
PRODUCT_STATUSES = ("active", "draft", "archived", "deleted")
POLICY_KINDS = ("refund", "shipping", "privacy", "terms", "contact")
IMPORT_STATUSES = ("pending", "running", "finished", "failed")
Money = sa.Numeric(14, 2)
# SQLite's search indexes: FTS5 virtual tables (and their shadow tables, named after them)
# that migration 0011 creates and triggers keep, outside these models; migrations/env.py
# leaves them out of `alembic check`.
SQLITE_SEARCH_TABLES = ("products_fts", "knowledge_fts")


class Product(SQLModel, table=True):
    """One product of one shop. `visible` is what a shopper could see (active and published on
    the Online Store); nothing else of the table reaches the model, a card or a search."""

    __tablename__ = "products"
    __table_args__ = (
        sa.UniqueConstraint("shop_id", "product_id", name="uq_products_shop_product"),
        sa.Index("ix_products_shop_handle", "shop_id", "handle"),
        # Shopify's product ids are unique across shops: a webhook naming an id stored for
        # another shop is refused (its shop comes from an unsigned header).
        sa.Index("ix_products_product_id", "product_id"),
        # "The cheapest under $30": a shop's products in price order, without a sort.
        sa.Index("ix_products_shop_price", "shop_id", "price_min"),
        # The catalog search on PostgreSQL (migration 0011): shop_id leads both GIN indexes
        # (btree_gin), so a shop's search reads only its own rows' entries.
        sa.Index(
            "ix_products_search_vector",
            "shop_id",
            "search_vector",
            postgresql_using="gin",
            info={"postgresql_only": True},
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False)
    )
    product_id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    handle: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    title: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    description: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    vendor: str = Field(default="", sa_column=sa.Column(sa.String(255), nullable=False))
    product_type: str = Field(default="", sa_column=sa.Column(sa.String(255), nullable=False))
    # JSON: a list of strings.
    tags: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    published: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    visible: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    available: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    price_min: Decimal | None = Field(default=None, sa_column=sa.Column(Money))
    price_max: Decimal | None = Field(default=None, sa_column=sa.Column(Money))
    compare_at_min: Decimal | None = Field(default=None, sa_column=sa.Column(Money))
    compare_at_max: Decimal | None = Field(default=None, sa_column=sa.Column(Money))
    currency: str | None = Field(default=None, sa_column=sa.Column(sa.String(3)))
    image_url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    image_alt: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # JSON: [{"name": "Size", "values": ["S", "M"]}] and the variants (app/catalog/products.py).
    options: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False))
    variants: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False))
    # Shopify's updated_at: a webhook older than what is stored changes nothing.
    shopify_updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    # The import that last saw the product; one that finishes removes those it did not see.
    import_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    stored_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    # PostgreSQL only, written by the trigger of migration 0011 and by nothing else: the
    # weighted tsvector in the shop's language, NULL for a product a shopper cannot see.
    # SQLite keeps its own index in FTS5 tables outside these models (products_fts).
    search_vector: str | None = Field(
        default=None,
        sa_column=sa.Column(postgresql.TSVECTOR, info={"postgresql_only": True}),
    )


class ShopPolicy(SQLModel, table=True):
    """A policy the shop publishes (refund, shipping, privacy, terms, contact), as plain text."""

    __tablename__ = "shop_policies"
    __table_args__ = (sa.UniqueConstraint("shop_id", "kind", name="uq_shop_policies_shop_kind"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    title: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))


class Catalog(SQLModel, table=True):
    """A shop's catalog as a whole: what its prices and links are made of, and its import.

    An import writes what it reads into catalog_staged_rows; only when it has read everything
    does one transaction put it in place, so a shopper never sees half a catalog."""

    __tablename__ = "catalogs"

    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    )
    currency: str | None = Field(default=None, sa_column=sa.Column(sa.String(3)))
    # The storefront's primary domain, e.g. https://shop.example.com: product links.
    storefront_url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # The shop's language (ISO 639-1), for stemming.
    language: str | None = Field(default=None, sa_column=sa.Column(sa.String(8)))
    import_id: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    status: str = Field(default="pending", sa_column=sa.Column(sa.String(16), nullable=False))
    # "bulk" or "pages", and the bulk operation's id while Shopify runs it.
    method: str | None = Field(default=None, sa_column=sa.Column(sa.String(8)))
    bulk_operation_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    products_done: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    products_total: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    started_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True))
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True))
    )
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), index=True)
    )
    # While set and in the future, one worker runs the import; others leave it.
    lease_until: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True))
    )


class CatalogStagedRow(SQLModel, table=True):
    """What an import has read and not yet put in place: a product or one of its variants
    (a bulk operation's JSONL gives them as separate lines, not always together)."""

    __tablename__ = "catalog_staged_rows"
    __table_args__ = (
        sa.Index("ix_catalog_staged_rows_import", "shop_id", "import_id", "kind", "product_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False)
    )
    import_id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))  # product, variant
    product_id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    data: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # the GraphQL node, JSON


class KnowledgeEntry(SQLModel, table=True):
    """PostgreSQL only: the shop's policies and FAQ entries in one searchable table, kept by
    the triggers of migration 0011 on shop_policies and faq_entries (nothing else writes it).
    SQLite keeps the same in the FTS5 table knowledge_fts."""

    __tablename__ = "knowledge_entries"
    __table_args__ = (
        sa.Index(
            "ix_knowledge_entries_search",
            "shop_id",
            "search_vector",
            postgresql_using="gin",
            info={"postgresql_only": True},
        ),
        {"info": {"postgresql_only": True}},
    )

    # "faq" or "policy", and the id of the row in faq_entries or shop_policies.
    source: str = Field(sa_column=sa.Column(sa.String(8), primary_key=True))
    source_id: int = Field(sa_column=sa.Column(BigId, primary_key=True))
    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    title: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    search_vector: str = Field(sa_column=sa.Column(postgresql.TSVECTOR, nullable=False))


class CatalogTerm(SQLModel, table=True):
    """PostgreSQL only: the words of a shop's products (title, type, vendor, tags, option
    values) and policies and FAQ entries, written by the triggers of migration 0011, where a
    misspelt word of a search finds the shop's word it was meant to be (trigrams, then edit
    distance). Words are added, not counted: one a product no longer holds stays until the
    shop has neither products nor policies and FAQ entries (or is deleted), and at worst
    leads a misspelling to a word that finds nothing. SQLite reads its FTS5 vocabularies."""

    __tablename__ = "catalog_terms"
    __table_args__ = (
        sa.Index(
            "ix_catalog_terms_trgm",
            "shop_id",
            "term",
            postgresql_using="gin",
            postgresql_ops={"term": "gin_trgm_ops"},
            info={"postgresql_only": True},
        ),
        {"info": {"postgresql_only": True}},
    )

    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    )
    term: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
