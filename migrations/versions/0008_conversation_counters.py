"""Conversations keep their message count and first question, for the merchant's statistics

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding a column with a constant default rewrites nothing on PostgreSQL 11+.
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("message_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("first_question", sa.Text(), nullable=True))
    op.execute(
        "UPDATE conversations SET"
        " message_count = (SELECT count(*) FROM messages"
        " WHERE messages.conversation_id = conversations.id),"
        " first_question = (SELECT content FROM messages"
        " WHERE messages.conversation_id = conversations.id AND messages.role = 'user'"
        " ORDER BY messages.id LIMIT 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("first_question")
        batch_op.drop_column("message_count")
