"""The catalog search: products, policies and FAQ entries indexed by the database itself

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

PostgreSQL: a weighted tsvector (title A; product type and vendor B; tags and option values C;
description D) in the shop's language, written by a trigger on products; policies and FAQ
entries copied by triggers into knowledge_entries; the shop's words kept in catalog_terms under
a trigram index, for misspellings. SQLite: external-content FTS5 over products and one FTS5 table
over policies and FAQ entries, kept by triggers, with fts5vocab tables for misspellings.
Nothing of the application writes any of it: every write to products, shop_policies,
faq_entries and catalogs (and the cascades of a shop's deletion) keeps it current.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ---- PostgreSQL ------------------------------------------------------------------------------

PG_FUNCTIONS = [
    # The text search configuration of a catalog's language (ISO 639-1, maybe with a region).
    """
    CREATE FUNCTION catalog_search_config(language text) RETURNS regconfig
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT (CASE lower(split_part(coalesce(language, ''), '-', 1))
        WHEN 'en' THEN 'pg_catalog.english' WHEN 'fr' THEN 'pg_catalog.french'
        WHEN 'de' THEN 'pg_catalog.german' WHEN 'es' THEN 'pg_catalog.spanish'
        WHEN 'it' THEN 'pg_catalog.italian' WHEN 'pt' THEN 'pg_catalog.portuguese'
        WHEN 'nl' THEN 'pg_catalog.dutch' WHEN 'sv' THEN 'pg_catalog.swedish'
        WHEN 'da' THEN 'pg_catalog.danish' WHEN 'nb' THEN 'pg_catalog.norwegian'
        WHEN 'fi' THEN 'pg_catalog.finnish'
        ELSE 'pg_catalog.simple' END)::regconfig
    $$
    """,
    """
    CREATE FUNCTION shop_search_config(shop bigint) RETURNS regconfig
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
      SELECT coalesce(
        (SELECT catalog_search_config(language) FROM catalogs WHERE shop_id = shop),
        'pg_catalog.simple'::regconfig)
    $$
    """,
    # Words are added in order, and only new ones written: two writers of one shop wait on
    # each other only for a word neither has seen.
    """
    CREATE FUNCTION remember_terms(shop bigint, words text) RETURNS void
    LANGUAGE sql AS $$
      INSERT INTO catalog_terms (shop_id, term)
      SELECT shop, t FROM unnest(tsvector_to_array(to_tsvector('pg_catalog.simple', words))) t
      WHERE length(t) BETWEEN 3 AND 40 ORDER BY t
      ON CONFLICT DO NOTHING
    $$
    """,
    """
    CREATE FUNCTION knowledge_vector(config regconfig, title text, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT setweight(to_tsvector(config, title), 'A')
        || setweight(to_tsvector(config, left(body, 200000)), 'C')
    $$
    """,
    # A product a shopper cannot see has no entry: it can never be found.
    """
    CREATE FUNCTION products_search_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      config regconfig;
      tag_words text;
      option_words text;
    BEGIN
      IF NOT NEW.visible THEN
        NEW.search_vector := NULL;
        RETURN NEW;
      END IF;
      config := shop_search_config(NEW.shop_id);
      SELECT coalesce(string_agg(t, ' '), '') INTO tag_words
        FROM jsonb_array_elements_text(NEW.tags::jsonb) t;
      SELECT coalesce(string_agg(v, ' '), '') INTO option_words
        FROM jsonb_array_elements(NEW.options::jsonb) o,
             jsonb_array_elements_text(o -> 'values') v;
      NEW.search_vector :=
        setweight(to_tsvector(config, NEW.title), 'A')
        || setweight(to_tsvector(config, NEW.product_type || ' ' || NEW.vendor), 'B')
        || setweight(to_tsvector(config, tag_words || ' ' || option_words), 'C')
        || setweight(to_tsvector(config, left(NEW.description, 100000)), 'D');
      PERFORM remember_terms(NEW.shop_id, concat_ws(' ', NEW.title, NEW.product_type,
                                                    NEW.vendor, tag_words, option_words));
      RETURN NEW;
    END $$
    """,
    """
    CREATE FUNCTION shop_policies_knowledge() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        DELETE FROM knowledge_entries WHERE source = 'policy' AND source_id = OLD.id;
      END IF;
      IF TG_OP <> 'DELETE' THEN
        INSERT INTO knowledge_entries (source, source_id, shop_id, kind, title, body, url,
                                       search_vector)
        VALUES ('policy', NEW.id, NEW.shop_id, NEW.kind, NEW.title, NEW.body, NEW.url,
                knowledge_vector(shop_search_config(NEW.shop_id), NEW.title, NEW.body));
        PERFORM remember_terms(NEW.shop_id, NEW.title || ' ' || left(NEW.body, 200000));
      END IF;
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION faq_entries_knowledge() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        DELETE FROM knowledge_entries WHERE source = 'faq' AND source_id = OLD.id;
      END IF;
      IF TG_OP <> 'DELETE' THEN
        INSERT INTO knowledge_entries (source, source_id, shop_id, kind, title, body, url,
                                       search_vector)
        VALUES ('faq', NEW.id, NEW.shop_id, 'faq', NEW.question, NEW.answer, NULL,
                knowledge_vector(shop_search_config(NEW.shop_id), NEW.question, NEW.answer));
        PERFORM remember_terms(NEW.shop_id, NEW.question || ' ' || NEW.answer);
      END IF;
      RETURN NULL;
    END $$
    """,
    # A shop left with no product, policy or FAQ entry keeps none of their words.
    """
    CREATE FUNCTION catalog_terms_forget() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM catalog_terms t USING (SELECT DISTINCT shop_id FROM gone) g
      WHERE t.shop_id = g.shop_id
        AND NOT EXISTS (SELECT 1 FROM products p WHERE p.shop_id = g.shop_id)
        AND NOT EXISTS (SELECT 1 FROM knowledge_entries k WHERE k.shop_id = g.shop_id);
      RETURN NULL;
    END $$
    """,
    # A catalog whose language changes (or first becomes known) is indexed again in it.
    """
    CREATE FUNCTION catalogs_search_language() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      before regconfig := 'pg_catalog.simple';
      config regconfig := catalog_search_config(NEW.language);
    BEGIN
      IF TG_OP = 'UPDATE' THEN
        before := catalog_search_config(OLD.language);
      END IF;
      IF config = before THEN
        RETURN NULL;
      END IF;
      UPDATE products SET title = title WHERE shop_id = NEW.shop_id AND visible;
      UPDATE knowledge_entries SET search_vector = knowledge_vector(config, title, body)
        WHERE shop_id = NEW.shop_id;
      RETURN NULL;
    END $$
    """,
]

PG_TRIGGERS = [
    # Not on import_id or stored_at alone: an import marking what it saw re-indexes nothing.
    "CREATE TRIGGER products_search_refresh BEFORE INSERT OR UPDATE OF shop_id, title,"
    " description, vendor, product_type, tags, options, visible ON products"
    " FOR EACH ROW EXECUTE FUNCTION products_search_refresh()",
    "CREATE TRIGGER shop_policies_knowledge AFTER INSERT OR UPDATE OR DELETE ON shop_policies"
    " FOR EACH ROW EXECUTE FUNCTION shop_policies_knowledge()",
    "CREATE TRIGGER faq_entries_knowledge AFTER INSERT OR UPDATE OR DELETE ON faq_entries"
    " FOR EACH ROW EXECUTE FUNCTION faq_entries_knowledge()",
    "CREATE TRIGGER products_terms_forget AFTER DELETE ON products REFERENCING OLD TABLE AS gone"
    " FOR EACH STATEMENT EXECUTE FUNCTION catalog_terms_forget()",
    "CREATE TRIGGER knowledge_terms_forget AFTER DELETE ON knowledge_entries"
    " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION catalog_terms_forget()",
    "CREATE TRIGGER catalogs_search_language AFTER INSERT OR UPDATE OF language ON catalogs"
    " FOR EACH ROW EXECUTE FUNCTION catalogs_search_language()",
]

PG_BACKFILL = [
    "UPDATE products SET title = title WHERE visible",
    "SELECT remember_terms(shop_id, title || ' ' || body) FROM shop_policies",
    "SELECT remember_terms(shop_id, question || ' ' || answer) FROM faq_entries",
    "INSERT INTO knowledge_entries (source, source_id, shop_id, kind, title, body, url,"
    " search_vector) SELECT 'policy', id, shop_id, kind, title, body, url,"
    " knowledge_vector(shop_search_config(shop_id), title, body) FROM shop_policies",
    "INSERT INTO knowledge_entries (source, source_id, shop_id, kind, title, body, url,"
    " search_vector) SELECT 'faq', id, shop_id, 'faq', question, answer, NULL,"
    " knowledge_vector(shop_search_config(shop_id), question, answer) FROM faq_entries",
]

# ---- SQLite ----------------------------------------------------------------------------------

# Porter for every shop: SQLite offers no other stemmer (it strips English suffixes, which also
# joins many French and Spanish plurals to their singulars). shop_id is indexed so that a
# search can ask for one shop's rows inside the MATCH (bm25 gives it no weight).
TOKENIZE = "tokenize='porter unicode61 remove_diacritics 2'"
_TAGS = "coalesce((SELECT group_concat(value, ' ') FROM json_each({row}.tags)), '')"
_OPTIONS = (
    "coalesce((SELECT group_concat(v.value, ' ') FROM json_each({row}.options) o,"
    " json_each(o.value, '$.values') v), '')"
)
_PRODUCT_COLUMNS = "shop_id, title, product_type, vendor, tags, options, description"


def _product_values(row: str) -> str:
    tags, options = _TAGS.format(row=row), _OPTIONS.format(row=row)
    return (
        f"{row}.id, {row}.shop_id, {row}.title, {row}.product_type, {row}.vendor, {tags},"
        f" {options}, {row}.description"
    )


SQLITE_STATEMENTS = [
    f"CREATE VIRTUAL TABLE products_fts USING fts5({_PRODUCT_COLUMNS}, content='products',"
    f" content_rowid='id', {TOKENIZE})",
    "CREATE VIRTUAL TABLE products_fts_vocab USING fts5vocab(products_fts, 'row')",
    # Only what a shopper can see is indexed. An external-content table must be told the very
    # values it indexed to remove a row: the same expressions of the old row.
    f"CREATE TRIGGER products_fts_insert AFTER INSERT ON products WHEN new.visible BEGIN"
    f" INSERT INTO products_fts(rowid, {_PRODUCT_COLUMNS}) SELECT {_product_values('new')};"
    " END",
    f"CREATE TRIGGER products_fts_delete AFTER DELETE ON products WHEN old.visible BEGIN"
    f" INSERT INTO products_fts(products_fts, rowid, {_PRODUCT_COLUMNS})"
    f" SELECT 'delete', {_product_values('old')}; END",
    "CREATE TRIGGER products_fts_update AFTER UPDATE OF shop_id, title, description, vendor,"
    " product_type, tags, options, visible ON products BEGIN"
    f" INSERT INTO products_fts(products_fts, rowid, {_PRODUCT_COLUMNS})"
    f" SELECT 'delete', {_product_values('old')} WHERE old.visible;"
    f" INSERT INTO products_fts(rowid, {_PRODUCT_COLUMNS}) SELECT {_product_values('new')}"
    " WHERE new.visible; END",
    # Policies and FAQ entries in one table of its own content: a policy's rowid is twice its
    # id, an FAQ entry's twice its id plus one.
    f"CREATE VIRTUAL TABLE knowledge_fts USING fts5(shop_id, title, body, kind UNINDEXED,"
    f" url UNINDEXED, {TOKENIZE})",
    "CREATE VIRTUAL TABLE knowledge_fts_vocab USING fts5vocab(knowledge_fts, 'row')",
]
_POLICY_ROW = "new.id * 2, new.shop_id, new.title, new.body, new.kind, new.url"
_FAQ_ROW = "new.id * 2 + 1, new.shop_id, new.question, new.answer, 'faq', NULL"
_KNOWLEDGE_INSERT = "INSERT INTO knowledge_fts(rowid, shop_id, title, body, kind, url) VALUES"
for _table, _row, _rowid in (
    ("shop_policies", _POLICY_ROW, "old.id * 2"),
    ("faq_entries", _FAQ_ROW, "old.id * 2 + 1"),
):
    SQLITE_STATEMENTS += [
        f"CREATE TRIGGER {_table}_fts_insert AFTER INSERT ON {_table} BEGIN"
        f" {_KNOWLEDGE_INSERT} ({_row}); END",
        f"CREATE TRIGGER {_table}_fts_update AFTER UPDATE ON {_table} BEGIN"
        f" DELETE FROM knowledge_fts WHERE rowid = {_rowid}; {_KNOWLEDGE_INSERT} ({_row}); END",
        f"CREATE TRIGGER {_table}_fts_delete AFTER DELETE ON {_table} BEGIN"
        f" DELETE FROM knowledge_fts WHERE rowid = {_rowid}; END",
    ]

SQLITE_BACKFILL = [
    f"INSERT INTO products_fts(rowid, {_PRODUCT_COLUMNS}) SELECT"
    f" {_product_values('products')} FROM products WHERE visible",
    f"{_KNOWLEDGE_INSERT.removesuffix(' VALUES')} SELECT id * 2, shop_id, title, body, kind, url"
    " FROM shop_policies",
    f"{_KNOWLEDGE_INSERT.removesuffix(' VALUES')} SELECT id * 2 + 1, shop_id, question, answer,"
    " 'faq', NULL FROM faq_entries",
]


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index("ix_products_shop_price", ["shop_id", "price_min"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        for statement in SQLITE_STATEMENTS + SQLITE_BACKFILL:
            op.execute(statement)
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.add_column("products", sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True))
    op.create_table(
        "knowledge_entries",
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("search_vector", postgresql.TSVECTOR(), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_table(
        "catalog_terms",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("term", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("shop_id", "term"),
    )
    for statement in PG_FUNCTIONS + PG_TRIGGERS + PG_BACKFILL:
        op.execute(statement)
    # New indexes, built once the backfill has written what they index.
    op.create_index(
        "ix_products_search_vector",
        "products",
        ["shop_id", "search_vector"],
        postgresql_using="gin",
    )
    op.create_index(
        "ix_catalog_terms_trgm",
        "catalog_terms",
        ["shop_id", "term"],
        postgresql_using="gin",
        postgresql_ops={"term": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_knowledge_entries_search",
        "knowledge_entries",
        ["shop_id", "search_vector"],
        postgresql_using="gin",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name in ("products", "shop_policies", "faq_entries"):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {name}_fts_{event}")
        for table in ("products_fts_vocab", "products_fts", "knowledge_fts_vocab", "knowledge_fts"):
            op.execute(f"DROP TABLE IF EXISTS {table}")
    else:
        for trigger, table in (
            ("products_search_refresh", "products"),
            ("shop_policies_knowledge", "shop_policies"),
            ("faq_entries_knowledge", "faq_entries"),
            ("catalogs_search_language", "catalogs"),
            ("products_terms_forget", "products"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.drop_table("knowledge_entries")
        op.drop_table("catalog_terms")
        op.drop_index("ix_products_search_vector", table_name="products")
        op.drop_column("products", "search_vector")
        for function in (
            "catalogs_search_language()",
            "catalog_terms_forget()",
            "remember_terms(bigint, text)",
            "faq_entries_knowledge()",
            "shop_policies_knowledge()",
            "products_search_refresh()",
            "knowledge_vector(regconfig, text, text)",
            "shop_search_config(bigint)",
            "catalog_search_config(text)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index("ix_products_shop_price")
