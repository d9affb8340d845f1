"""The index on a shop's conversations by start time carries their status and message count

The merchant's statistics read every conversation of the shop (counts per day, abandoned,
messages): with these columns in the index PostgreSQL reads them from the index alone, not
from the table's rows. It replaces ix_conversations_shop_created, which served only the order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no INCLUDE: its index on (shop_id, created_at) stays as it is
    # Built beside the old one without holding off writes, then put in its place.
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conversations_shop_created_covering"
            " ON conversations (shop_id, created_at) INCLUDE (status, message_count)"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_conversations_shop_created")
        op.execute(
            "ALTER INDEX ix_conversations_shop_created_covering"
            " RENAME TO ix_conversations_shop_created"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conversations_shop_created_plain"
            " ON conversations (shop_id, created_at)"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_conversations_shop_created")
        op.execute(
            "ALTER INDEX ix_conversations_shop_created_plain"
            " RENAME TO ix_conversations_shop_created"
        )
