"""Rate limits per session, shopper IP and shop, counted in the database so every worker agrees."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from starlette.requests import Request

from app import repo
from app.errors import ApiError
from app.repo.common import Executor


@dataclass(frozen=True)
class Limits:
    per_session: int = 20
    per_ip: int = 60
    per_shop: int = 1200
    window: int = 60  # seconds
    proxy_hops: int = 1  # X-Forwarded-For entries, from the right, added by trusted proxies


def shopper_ip(request: Request, hops: int) -> str:
    """The shopper's address as the app proxy reported it in X-Forwarded-For.

    Entries further left can be written by anyone; the one `hops` from the right was added
    by the trusted proxy chain (Shopify, then our own load balancers).
    """
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",")]
    forwarded = [p for p in forwarded if p]
    if len(forwarded) >= hops > 0:
        return forwarded[-hops]
    return request.client.host if request.client else "unknown"


class RateLimiter:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    async def check_turn(
        self, connection: Executor, *, request: Request, shop: str, session_id: str
    ) -> None:
        """Count one new turn; 429 with Retry-After when any of its three limits is passed.

        On PostgreSQL the count is a statement of its own that commits at once, before the
        turn is saved: every turn of a shop counts into the same shop and address rows, and
        inside the turn's transaction those rows stayed locked until the turn's commit, so a
        shop's turns queued behind one another (bench/). Each count is atomic, so exactly
        `limit` turns of a window pass, however many workers race. A refused turn is taken
        back out of every bucket, so it does not use up the shop's or another bucket's
        budget.
        """
        limits = self.limits
        now = time.time()
        window = int(now // limits.window) * limits.window
        ip = shopper_ip(request, limits.proxy_hops)
        buckets = {
            f"session:{shop}:{session_id}": limits.per_session,
            f"ip:{ip}": limits.per_ip,
            f"shop:{shop}": limits.per_shop,
        }
        names = list(buckets)
        counts = await repo.count_hits(connection, buckets=names, window_start=window)
        over = [bucket for bucket, limit in buckets.items() if counts.get(bucket, 0) > limit]
        if over:
            await repo.uncount_hits(connection, buckets=names, window_start=window)
            wait = max(1, math.ceil(window + limits.window - now))
            kind = over[0].split(":", 1)[0]
            raise ApiError(
                "rate_limited",
                f"Too many messages from this {kind}; try again in {wait} seconds.",
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
