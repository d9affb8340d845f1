"""Live conversations: who answers a conversation (the assistant, waiting for a person, or a
team member), its events besides messages, team members' names, a team message's author

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns, and one with a constant default: no table rewrite on PostgreSQL.
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("handler", sa.String(length=16), nullable=False, server_default="assistant")
        )
        batch_op.add_column(sa.Column("assignee", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("contact_email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("read_message_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("author", sa.String(length=80), nullable=True))
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "conversation_events",
        sa.Column("id", big_id, primary_key=True),
        sa.Column(
            "conversation_id",
            big_id,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_conversation_events_conversation_id",
        "conversation_events",
        ["conversation_id", "id"],
    )
    op.create_table(
        "staff_members",
        sa.Column(
            "shop_id", big_id, sa.ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("sub", sa.String(length=64), primary_key=True),
        sa.Column("display_name", sa.String(length=80), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
    )
    where = sa.text("handler <> 'assistant'")
    # Beside the writes on PostgreSQL (no lock held while it builds).
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_conversations_shop_handed_over",
            "conversations",
            ["shop_id", "waiting_since"],
            postgresql_where=where,
            sqlite_where=where,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_conversations_shop_handed_over",
            table_name="conversations",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_table("staff_members")
    op.drop_index("ix_conversation_events_conversation_id", table_name="conversation_events")
    op.drop_table("conversation_events")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("author")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        for column in (
            "read_message_id",
            "seen_at",
            "contact_email",
            "waiting_since",
            "assignee",
            "handler",
        ):
            batch_op.drop_column(column)
