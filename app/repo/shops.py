"""Queries of shops: install state, tokens, settings and FAQ entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import FaqEntry, RateLimitCounter, Shop, utcnow
from app.repo.common import _rowcount


async def get_shop(session: AsyncSession, *, domain: str) -> Shop | None:
    result = await session.execute(sa.select(Shop).where(col(Shop.domain) == domain))
    return result.scalar_one_or_none()


async def install_shop(
    session: AsyncSession, *, domain: str, access_token: str | None = None
) -> Shop:
    """Register a shop, or bring an uninstalled one back."""
    shop = await get_shop(session, domain=domain)
    if shop is None:
        shop = Shop(domain=domain, access_token=access_token, installed=True)
        session.add(shop)
    else:
        shop.installed = True
        shop.uninstalled_at = None
        if access_token is not None:
            shop.access_token = access_token
    await session.flush()
    return shop


async def uninstall_shop(session: AsyncSession, *, domain: str) -> bool:
    result = await session.execute(
        sa.update(Shop)
        .where(col(Shop.domain) == domain)
        .values(
            installed=False,
            access_token=None,
            refresh_token=None,
            access_token_expires_at=None,
            refresh_token_expires_at=None,
            uninstalled_at=utcnow(),
        )
    )
    return bool(_rowcount(result))


async def replace_faq(
    session: AsyncSession, *, shop_id: int, entries: Sequence[tuple[str, str]]
) -> None:
    await session.execute(sa.delete(FaqEntry).where(col(FaqEntry.shop_id) == shop_id))
    session.add_all(
        FaqEntry(shop_id=shop_id, question=q, answer=a, position=i)
        for i, (q, a) in enumerate(entries)
    )
    await session.flush()


async def list_faq(session: AsyncSession, *, shop_id: int) -> list[FaqEntry]:
    result = await session.execute(
        sa.select(FaqEntry)
        .where(col(FaqEntry.shop_id) == shop_id)
        .order_by(col(FaqEntry.position), col(FaqEntry.id))
    )
    return list(result.scalars())


async def store_tokens(
    session: AsyncSession,
    *,
    domain: str,
    access_token: str,
    refresh_token: str | None,
    access_token_expires_at: datetime | None,
    refresh_token_expires_at: datetime | None,
    scopes: str | None,
) -> Shop:
    """Install (or reinstall) a shop with its tokens, already encrypted by the caller."""
    shop = await install_shop(session, domain=domain, access_token=access_token)
    shop.refresh_token = refresh_token
    shop.access_token_expires_at = access_token_expires_at
    shop.refresh_token_expires_at = refresh_token_expires_at
    shop.scopes = scopes
    await session.flush()
    return shop


SHOP_SETTINGS = (
    "greeting",
    "accent_color",
    "system_prompt",
    "ai_provider",
    "ai_model",
    "retention_days",
)


async def update_settings(
    session: AsyncSession, *, shop_id: int, values: dict[str, object]
) -> None:
    unknown = set(values) - set(SHOP_SETTINGS)
    assert not unknown, unknown
    await session.execute(sa.update(Shop).where(col(Shop.id) == shop_id).values(**values))


async def delete_shop(session: AsyncSession, *, domain: str) -> bool:
    """Everything of a shop goes with it (conversations, messages, FAQ, data requests cascade)."""
    result = await session.execute(sa.delete(Shop).where(col(Shop.domain) == domain))
    return bool(_rowcount(result))


async def count_hits(
    session: AsyncSession, *, buckets: list[str], window_start: int
) -> dict[str, int]:
    """Add one to each bucket's counter of this window in one statement; return the counts."""
    table = RateLimitCounter.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table).values(
        [{"bucket": bucket, "window_start": window_start, "count": 1} for bucket in buckets]
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["bucket", "window_start"], set_={"count": table.c.count + 1}
    ).returning(table.c.bucket, table.c.count)
    result = await session.execute(upsert)
    return {str(bucket): int(count) for bucket, count in result.all()}


async def forget_old_counters(session: AsyncSession, *, before: int) -> int:
    result = await session.execute(
        sa.delete(RateLimitCounter).where(col(RateLimitCounter.window_start) < before)
    )
    return _rowcount(result)
