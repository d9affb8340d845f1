"""Webhooks deduplicated by body and claimed before applying; single-use OAuth states; a
lease for refreshing a shop's token

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        # webhook_events is small (a row per delivery, never on a shopper's path): a plain
        # index build is fine here.
        batch_op.create_index(
            "uq_webhook_events_topic_digest", ["topic", "body_digest"], unique=True
        )
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_refresh_until", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "oauth_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )


def downgrade() -> None:
    op.drop_table("oauth_nonces")
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_column("token_refresh_until")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("uq_webhook_events_topic_digest")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("body_digest")
