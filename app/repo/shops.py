"""Queries of shops: install state, tokens, settings and FAQ entries."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import FaqEntry, RateLimitCounter, Shop, utcnow
from app.repo.common import Executor, _rowcount
from app.repo.rows import FaqRow, ShopRow, many, one

shops_table: sa.Table = Shop.__table__  # type: ignore[attr-defined]
faq_table: sa.Table = FaqEntry.__table__  # type: ignore[attr-defined]


_SHOP = sa.select(shops_table).where(shops_table.c.domain == sa.bindparam("domain"))
_FAQ = (
    sa.select(faq_table)
    .where(faq_table.c.shop_id == sa.bindparam("shop_id"))
    .order_by(faq_table.c.position, faq_table.c.id)
)


async def get_shop(session: Executor, *, domain: str) -> ShopRow | None:
    """The shop, read only (a Core read: every storefront request makes one)."""
    row = (await session.execute(_SHOP, {"domain": domain})).first()
    return one(ShopRow, row)


async def install_shop(
    session: AsyncSession, *, domain: str, access_token: str | None = None
) -> Shop:
    """Register a shop, or bring an uninstalled one back."""
    result = await session.execute(sa.select(Shop).where(col(Shop.domain) == domain))
    shop = result.scalar_one_or_none()
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


async def list_faq(session: Executor, *, shop_id: int) -> list[FaqRow]:
    result = await session.execute(_FAQ, {"shop_id": shop_id})
    return many(FaqRow, result)


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
    shop.token_refresh_until = None
    await session.flush()
    return shop


async def shops_with_tokens(session: AsyncSession) -> list[Shop]:
    """Shops holding a token, as ORM objects to be changed in this session."""
    result = await session.execute(sa.select(Shop).where(col(Shop.access_token).is_not(None)))
    return list(result.scalars())


async def take_refresh_lease(session: AsyncSession, *, shop_id: int, until: datetime) -> bool:
    """Become the one worker refreshing this shop's token, unless another one is (until its
    lease runs out: a worker that died mid-refresh holds nothing for long)."""
    now = utcnow()
    result = await session.execute(
        sa.update(Shop)
        .where(
            col(Shop.id) == shop_id,
            sa.or_(col(Shop.token_refresh_until).is_(None), col(Shop.token_refresh_until) < now),
        )
        .values(token_refresh_until=until)
    )
    return bool(_rowcount(result))


async def release_refresh_lease(session: AsyncSession, *, shop_id: int) -> None:
    await session.execute(
        sa.update(Shop).where(col(Shop.id) == shop_id).values(token_refresh_until=None)
    )


async def drop_tokens(session: AsyncSession, *, shop_id: int) -> None:
    """Tokens Shopify no longer accepts: gone, so the next visit to the app exchanges anew."""
    await session.execute(
        sa.update(Shop)
        .where(col(Shop.id) == shop_id)
        .values(
            access_token=None,
            refresh_token=None,
            access_token_expires_at=None,
            refresh_token_expires_at=None,
            token_refresh_until=None,
        )
    )


SHOP_SETTINGS = (
    "greeting",
    "accent_color",
    "system_prompt",
    "ai_provider",
    "ai_model",
    "retention_days",
    "direct_streams",
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


@functools.cache
def _hits_statement(buckets: int, step: int) -> sa.TextClause:
    """One upsert for all buckets, as text: SQLAlchemy does not cache a multi-row VALUES, and
    this SQL reads the same on PostgreSQL and SQLite.

    Taking a count back is the same upsert with a step of -1 (never below 0), not an UPDATE
    ... WHERE bucket IN (...): an UPDATE locks its rows in the order it finds them, an upsert
    in the order of its VALUES, and two turns that lock the same rows in two orders deadlock
    (a retry's count against another's taking back). Callers pass the buckets sorted."""
    rows = ", ".join(f"(:b{i}, :window, {max(step, 0)})" for i in range(buckets))
    counted = "rate_limit_counters.count"
    update = (
        f"{counted} + 1" if step > 0 else f"CASE WHEN {counted} > 0 THEN {counted} - 1 ELSE 0 END"
    )
    return sa.text(
        f"INSERT INTO rate_limit_counters (bucket, window_start, count) VALUES {rows} "
        f"ON CONFLICT (bucket, window_start) DO UPDATE SET count = {update} "
        "RETURNING bucket, count"
    )


async def _step_hits(
    session: Executor, buckets: list[str], window_start: int, step: int
) -> dict[str, int]:
    ordered = sorted(set(buckets))  # one lock order for every turn of every worker
    params: dict[str, object] = {f"b{i}": bucket for i, bucket in enumerate(ordered)}
    result = await session.execute(
        _hits_statement(len(ordered), step), {**params, "window": window_start}
    )
    return {str(bucket): int(count) for bucket, count in result.all()}


async def count_hits(session: Executor, *, buckets: list[str], window_start: int) -> dict[str, int]:
    """Add one to each bucket's counter of this window in one statement; return the counts."""
    return await _step_hits(session, buckets, window_start, 1)


async def uncount_hits(session: Executor, *, buckets: list[str], window_start: int) -> None:
    """Take back what count_hits added, for a turn that was refused."""
    await _step_hits(session, buckets, window_start, -1)


async def forget_old_counters(session: AsyncSession, *, before: int) -> int:
    result = await session.execute(
        sa.delete(RateLimitCounter).where(col(RateLimitCounter.window_start) < before)
    )
    return _rowcount(result)
