"""Rate-limit counters in an unlogged table (PostgreSQL only)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every turn of a shop counts into the same two rows (its shop's and its address's). In a
    # logged table each count waited for a WAL flush while holding those rows, and the turns
    # of a shop queued behind one another (bench/: a third of a turn's database time). An
    # unlogged table commits without the flush; a crash empties it, which costs at most one
    # minute's counts.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE rate_limit_counters SET UNLOGGED")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE rate_limit_counters SET LOGGED")
