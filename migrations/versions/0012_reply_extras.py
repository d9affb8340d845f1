"""A reply keeps its product cards, the tools it used, and whether they found nothing

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without a default: no table rewrite on PostgreSQL, however many messages.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("products", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tools", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("unanswered", sa.Boolean(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # messages is the largest table: built without holding off a turn's writes.
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_messages_unanswered",
                "messages",
                ["conversation_id", "id"],
                postgresql_concurrently=True,
                postgresql_where=sa.text("unanswered"),
                if_not_exists=True,
            )
    else:
        op.create_index(
            "ix_messages_unanswered",
            "messages",
            ["conversation_id", "id"],
            postgresql_concurrently=True,  # (SQLite builds it as any other)
            sqlite_where=sa.text("unanswered"),
            if_not_exists=True,
        )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_messages_unanswered")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("unanswered")
        batch_op.drop_column("tools")
        batch_op.drop_column("products")
