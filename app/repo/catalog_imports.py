"""The queries of a catalog import's state (the catalogs row of a shop): asking for one, the
lease that lets one worker run it, its progress, and how it ended.

The lease is catalogs.lease_until. Whoever set it holds it while it is in the future, and the
value it wrote is its proof: a renewal, a progress update or the finish only passes where
lease_until is still exactly that value, so a worker that stalled past its lease and was
replaced can change nothing.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Shop
from app.repo.catalog import catalogs, staged
from app.repo.common import _rowcount, is_postgres

shops_table: sa.Table = Shop.__table__  # type: ignore[attr-defined]
_mine = catalogs.c.shop_id


class LeaseLost(Exception):
    """Another worker holds the shop's import now: this one stops and writes nothing more."""


def _held(shop_id: int, lease: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(catalogs.c.shop_id == shop_id, catalogs.c.lease_until == lease)


async def request_import(session: AsyncSession, *, shop_id: int, now: datetime) -> bool:
    """Ask for an import as soon as a worker can run it; a running one is left to finish.
    Returns whether it was asked for (False: one is running)."""
    insert = (postgresql.insert if is_postgres(session) else sqlite.insert)(catalogs)
    values = {"status": "pending", "next_attempt_at": now, "error": None, "attempts": 0}
    # The table has no server defaults: a first row names every required column.
    first = {"shop_id": shop_id, "import_id": 0, "products_done": 0, **values}
    statement = insert.values(**first).on_conflict_do_update(
        index_elements=["shop_id"],
        set_=values,
        where=sa.not_(
            sa.and_(
                catalogs.c.status == "running",
                catalogs.c.lease_until.is_not(None),
                catalogs.c.lease_until > now,
            )
        ),
    )
    return bool(_rowcount(await session.execute(statement)))


async def take_import_lease(
    session: AsyncSession, *, shop_id: int, now: datetime, until: datetime
) -> bool:
    """Become the one worker running this shop's import, if one is due and nobody holds it
    (a worker that died mid-import holds it only until its lease runs out)."""
    result = await session.execute(
        sa.update(catalogs)
        .where(
            _mine == shop_id,
            catalogs.c.status != "finished",
            catalogs.c.next_attempt_at.is_not(None),
            catalogs.c.next_attempt_at <= now,
            sa.or_(catalogs.c.lease_until.is_(None), catalogs.c.lease_until < now),
        )
        .values(lease_until=until)
    )
    return bool(_rowcount(result))


async def renew_import_lease(
    session: AsyncSession,
    *,
    shop_id: int,
    lease: datetime,
    until: datetime,
    done: int | None = None,
    total: int | None = None,
) -> None:
    """Hold the lease longer, with the import's progress (for the dashboard's "N of M")."""
    values: dict[str, object] = {"lease_until": until}
    if done is not None:
        values["products_done"] = done
    if total is not None:
        values["products_total"] = total
    result = await session.execute(
        sa.update(catalogs).where(_held(shop_id, lease)).values(**values)
    )
    if not _rowcount(result):
        raise LeaseLost(shop_id)


async def begin_import(
    session: AsyncSession,
    *,
    shop_id: int,
    lease: datetime,
    now: datetime,
    method: str,
    total: int | None,
) -> int:
    """A new import under this lease: its id, and the staged rows of any earlier one gone."""
    result = await session.execute(
        sa.update(catalogs)
        .where(_held(shop_id, lease))
        .values(
            import_id=catalogs.c.import_id + 1,
            status="running",
            method=method,
            bulk_operation_id=None,
            products_done=0,
            products_total=total,
            started_at=now,
            error=None,
        )
        .returning(catalogs.c.import_id)
    )
    import_id = result.scalar_one_or_none()
    if import_id is None:
        raise LeaseLost(shop_id)
    await clear_staged(session, shop_id=shop_id)
    return int(import_id)


async def clear_staged(session: AsyncSession, *, shop_id: int) -> None:
    """What earlier imports of the shop staged and never put in place (they failed or died)."""
    await session.execute(sa.delete(staged).where(staged.c.shop_id == shop_id))


async def set_bulk_operation(
    session: AsyncSession, *, shop_id: int, lease: datetime, operation_id: str
) -> None:
    """Remember the bulk operation Shopify runs for this import: a worker taking over after
    a crash resumes it, and a bulk_operations/finish webhook naming another id is ignored."""
    result = await session.execute(
        sa.update(catalogs).where(_held(shop_id, lease)).values(bulk_operation_id=operation_id)
    )
    if not _rowcount(result):
        raise LeaseLost(shop_id)


async def finish_import(
    session: AsyncSession,
    *,
    shop_id: int,
    lease: datetime,
    now: datetime,
    done: int,
    currency: str | None,
    storefront_url: str | None,
    language: str | None,
) -> None:
    """The import is in place. Run first in the transaction that puts it there: on PostgreSQL
    the row stays locked until it commits, so no other worker takes the lease meanwhile."""
    result = await session.execute(
        sa.update(catalogs)
        .where(_held(shop_id, lease))
        .values(
            status="finished",
            finished_at=now,
            error=None,
            attempts=0,
            next_attempt_at=None,
            bulk_operation_id=None,
            products_done=done,
            products_total=done,
            currency=currency,
            storefront_url=storefront_url,
            language=language,
        )
    )
    if not _rowcount(result):
        raise LeaseLost(shop_id)


async def fail_import(
    session: AsyncSession,
    *,
    shop_id: int,
    lease: datetime,
    error: str,
    retry_at: datetime | None,
) -> None:
    """The import failed: the merchant sees why; the sweeper tries again at retry_at (None:
    not until someone asks). What it staged goes."""
    await session.execute(
        sa.update(catalogs)
        .where(_held(shop_id, lease))
        .values(
            status="failed",
            error=error[:500],
            attempts=catalogs.c.attempts + 1,
            next_attempt_at=retry_at,
            bulk_operation_id=None,
            lease_until=None,
        )
    )
    await clear_staged(session, shop_id=shop_id)


async def release_import_lease(session: AsyncSession, *, shop_id: int, lease: datetime) -> bool:
    """Let go of the lease. Returns whether an import was asked for while it was held and
    is due now (asked after this run read the shop, so this run did not answer it)."""
    result = await session.execute(
        sa.update(catalogs)
        .where(_held(shop_id, lease))
        .values(lease_until=None)
        .returning(catalogs.c.status)
    )
    return result.scalar_one_or_none() == "pending"


async def due_imports(session: AsyncSession, *, now: datetime, limit: int) -> list[str]:
    """Installed shops whose import is due and held by nobody, longest waiting first: asked
    for, failed and due again, or running under a lease that ran out (its worker died)."""
    rows = await session.execute(
        sa.select(shops_table.c.domain)
        .select_from(catalogs.join(shops_table, shops_table.c.id == catalogs.c.shop_id))
        .where(
            shops_table.c.installed.is_(True),
            catalogs.c.status != "finished",
            catalogs.c.next_attempt_at.is_not(None),
            catalogs.c.next_attempt_at <= now,
            sa.or_(catalogs.c.lease_until.is_(None), catalogs.c.lease_until < now),
        )
        .order_by(catalogs.c.next_attempt_at)
        .limit(limit)
    )
    return [str(domain) for domain in rows.scalars()]


__all__ = [
    "LeaseLost",
    "begin_import",
    "clear_staged",
    "due_imports",
    "fail_import",
    "finish_import",
    "release_import_lease",
    "renew_import_lease",
    "request_import",
    "set_bulk_operation",
    "take_import_lease",
]
