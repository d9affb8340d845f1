"""A shop's choice of direct streams (auto, always, never; null: the operator's default)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: no table rewrite on PostgreSQL.
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("direct_streams", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_column("direct_streams")
