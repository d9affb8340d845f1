"""Rate limits per session, shopper IP and shop, counted where every worker sees the same count:
in Redis where it is configured, otherwise (and while Redis cannot be reached) in the database."""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request

from app import repo
from app.errors import ApiError, BadRequest
from app.repo.common import Executor

log = logging.getLogger("app.ratelimit")

# All or nothing, atomically: refused (1-based index of the first full bucket) without
# counting, or counted in every bucket. KEYS: the buckets' counters of this window, then the
# turn's own key (its client_message_id's); ARGV[1]: how long a counter lives (s); ARGV[i + 1]:
# the limit of KEYS[i]. A turn whose key is there was counted already (a retry, by either
# path): -1, and nothing is counted again.
_TAKE = """
local turn = KEYS[#KEYS]
if turn ~= '' and redis.call('EXISTS', turn) == 1 then
  return -1
end
for i = 1, #KEYS - 1 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i + 1]) then
    return i
  end
end
for i = 1, #KEYS - 1 do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
if turn ~= '' then
  redis.call('SET', turn, '1', 'EX', ARGV[1])
end
return 0
"""
REDIS_PREFIX = "storefront-chat:rl:"
# After Redis failed, the database counts for this long before Redis is tried again: a Redis
# that does not answer would otherwise cost every turn its timeout.
REDIS_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class Limits:
    per_session: int = 20
    per_ip: int = 60
    per_shop: int = 1200
    window: int = 60  # seconds
    proxy_hops: int = 1  # X-Forwarded-For entries, from the right, added by trusted proxies
    # The same for /direct/..., reached from the shopper's browser without Shopify's proxy.
    direct_hops: int = 0


def _address(entry: str) -> str | None:
    """An X-Forwarded-For entry as one address (a port some proxies add dropped), or None."""
    host = entry
    if entry.startswith("["):  # [2001:db8::1]:443
        host = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:  # 203.0.113.9:443
        host = entry.partition(":")[0]
    if len(host) > 45 or "%" in host:  # longer than any IPv6 address; a zone is no shopper's
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def shopper_ip(request: Request, hops: int) -> str:
    """The shopper's address as the app proxy reported it in X-Forwarded-For.

    Entries further left can be written by anyone; the one `hops` from the right was added
    by the trusted proxy chain (Shopify, then our own load balancers). An entry there that is
    no address is refused: it would be a bucket of any length, past its column's.
    """
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",")]
    forwarded = [p for p in forwarded if p]
    if len(forwarded) >= hops > 0:
        address = _address(forwarded[-hops])
        if address is None:
            raise BadRequest(
                "invalid_forwarded_for", "X-Forwarded-For does not name the shopper's address."
            )
        return address
    if request.client is None:
        return "unknown"
    # uvicorn may have taken the connection's address from X-Forwarded-For itself (its
    # --proxy-headers, on by default for a peer in FORWARDED_ALLOW_IPS): as unchecked as an entry.
    address = _address(request.client.host)
    if address is None:
        raise BadRequest(
            "invalid_forwarded_for", "X-Forwarded-For does not name the shopper's address."
        )
    return address


class RateLimiter:
    def __init__(self, limits: Limits, *, redis_url: str = "") -> None:
        self.limits = limits
        self.redis: aioredis.Redis | None = None
        if redis_url:
            self.redis = aioredis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._take = self.redis.register_script(_TAKE)
        self._redis_down_until = 0.0

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def redis_reachable(self) -> bool | None:
        """None without Redis; otherwise whether it answers (for /readyz)."""
        if self.redis is None:
            return None
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def check_turn(
        self,
        connection: Executor,
        *,
        request: Request,
        shop: str,
        session_id: str,
        client_message_id: str | None = None,
        direct: bool = False,
    ) -> None:
        """Count one new turn; 429 with Retry-After when any of its three limits is passed.

        Each count is atomic, so exactly `limit` turns of a window pass, however many workers
        race, and a refused turn counts in no bucket: one abusive address cannot spend its
        shop's budget. In the database, on PostgreSQL, the count is a statement of its own
        that commits at once, before the turn is saved: every turn of a shop counts into the
        same shop and address rows, and inside the turn's transaction those rows stayed
        locked until the turn's commit, so a shop's turns queued behind one another (bench/).

        A turn sent again with its client_message_id (a retry, through the proxy or directly)
        is counted once in its window: its own key in the same count says it was seen.
        """
        limits = self.limits
        now = time.time()
        window = int(now // limits.window) * limits.window
        ip = shopper_ip(request, limits.direct_hops if direct else limits.proxy_hops)
        buckets = {
            f"session:{shop}:{session_id}": limits.per_session,
            f"ip:{ip}": limits.per_ip,
            f"shop:{shop}": limits.per_shop,
        }
        turn = f"turn:{shop}:{session_id}:{client_message_id}" if client_message_id else ""
        over = await self._over_in_redis(buckets, turn, window)
        if over is None:
            over = await self._over_in_database(connection, buckets, turn, window)
        if over:
            wait = max(1, math.ceil(window + limits.window - now))
            kind = over.split(":", 1)[0]
            raise ApiError(
                "rate_limited",
                f"Too many messages from this {kind}; try again in {wait} seconds.",
                status_code=429,
                headers={"Retry-After": str(wait)},
            )

    async def _over_in_redis(self, buckets: dict[str, int], turn: str, window: int) -> str | None:
        """The bucket that is full ("" if none), or None when Redis is not there to ask."""
        if self.redis is None or time.monotonic() < self._redis_down_until:
            return None
        keys = [f"{REDIS_PREFIX}{bucket}:{window}" for bucket in buckets]
        keys.append(f"{REDIS_PREFIX}{turn}:{window}" if turn else "")
        try:
            full = int(
                await self._take(keys=keys, args=[self.limits.window * 2, *buckets.values()])
            )
        except (RedisError, OSError) as exc:
            self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
            log.warning(
                "Redis cannot count rate limits (%s); the database counts them for %.0f s",
                type(exc).__name__,
                REDIS_RETRY_AFTER,
            )
            return None
        return list(buckets)[full - 1] if full > 0 else ""

    @staticmethod
    async def _over_in_database(
        connection: Executor, buckets: dict[str, int], turn: str, window: int
    ) -> str:
        names = list(buckets)
        counts = await repo.count_hits(
            connection, buckets=[*names, turn] if turn else names, window_start=window
        )
        if turn and counts.get(turn, 0) > 1:
            # Counted when it first came: taken back out of the buckets, its key left.
            await repo.uncount_hits(connection, buckets=names, window_start=window)
            return ""
        over = [bucket for bucket, limit in buckets.items() if counts.get(bucket, 0) > limit]
        if not over:
            return ""
        # Taken back out of every bucket, so that the refused turn counts in none.
        await repo.uncount_hits(
            connection, buckets=[*names, turn] if turn else names, window_start=window
        )
        return over[0]
