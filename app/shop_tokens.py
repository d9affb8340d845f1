"""A shop's offline tokens: stored encrypted, read once (StoredTokens), refreshed by one
worker at a time under a lease, dropped when Shopify refuses them for good."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app import repo
from app.models import aware, utcnow
from app.repo.rows import AnyShop
from app.shopify_admin import (
    REFRESH_REVOKED,
    AccessGrant,
    ShopifyAdminError,
    admin_graphql,
    refresh_grant,
)

if TYPE_CHECKING:
    from app.state import AppState

log = logging.getLogger("app.merchants")


async def store_grant(state: AppState, shop: str, grant: AccessGrant) -> AnyShop:
    tokens = state.tokens
    async with state.db.session() as session:
        return await repo.store_tokens(
            session,
            domain=shop,
            access_token=tokens.encrypt(grant.access_token) or "",
            refresh_token=tokens.encrypt(grant.refresh_token),
            access_token_expires_at=grant.expires_at,
            refresh_token_expires_at=grant.refresh_token_expires_at,
            scopes=grant.scope,
        )


@dataclass(frozen=True)
class StoredTokens:
    """The shop's tokens as stored, decrypted with our keys (None: absent or unreadable), and
    what follows from their expiry times: the one reading of them every caller makes."""

    access: str | None
    refresh: str | None
    access_expires: datetime | None
    refresh_expires: datetime | None

    @classmethod
    def of(cls, state: AppState, shop: AnyShop) -> StoredTokens:
        def when(value: datetime | None) -> datetime | None:
            return aware(value) if value else None

        return cls(
            access=state.tokens.decrypt(shop.access_token) if shop.access_token else None,
            refresh=state.tokens.decrypt(shop.refresh_token) if shop.refresh_token else None,
            access_expires=when(shop.access_token_expires_at),
            refresh_expires=when(shop.refresh_token_expires_at),
        )

    def current(self, within: timedelta = timedelta(0)) -> str | None:
        """The access token, while it does not expire within `within`."""
        if self.access_expires is not None and self.access_expires <= utcnow() + within:
            return None
        return self.access

    def renewable(self) -> bool:
        return self.refresh is not None and (
            self.refresh_expires is None or self.refresh_expires > utcnow()
        )

    def usable(self) -> bool:
        """Whether they can still reach Shopify, without asking it: the access token is
        current, or the refresh token can renew it."""
        return self.access is not None and (self.current() is not None or self.renewable())

    def refresh_due(self) -> bool:
        """Whether the access token expires within a minute and a refresh token can renew it."""
        return (
            self.access is not None
            and self.current(within=timedelta(seconds=60)) is None
            and self.refresh is not None
        )


REFRESH_LEASE = timedelta(seconds=30)


class TokenRevoked(Exception):
    """Shopify refused the shop's refresh token for good; the stored tokens were dropped."""


async def access_token(state: AppState, shop: AnyShop) -> str | None:
    """The shop's offline token, refreshed first when it is about to expire.

    Shopify rotates the refresh token on each use, so two workers refreshing at once would
    leave one of them with a refused token: one worker at a time holds a lease on the shop
    (shops.token_refresh_until), reads the shop again under it (another may have refreshed
    meanwhile), and the others wait for its result. A refusal for good drops the tokens
    (TokenRevoked), so that the next time the merchant opens the app a token exchange
    installs new ones.
    """
    shop_id = shop.id
    assert shop_id is not None
    deadline = utcnow() + REFRESH_LEASE + timedelta(seconds=5)
    while StoredTokens.of(state, shop).refresh_due():
        async with state.db.session() as session:
            leased = await repo.take_refresh_lease(
                session, shop_id=shop_id, until=utcnow() + REFRESH_LEASE
            )
            latest = await repo.get_shop(session, domain=shop.domain)
        if latest is None:
            return None
        if leased and not StoredTokens.of(state, latest).refresh_due():
            async with state.db.session() as session:
                await repo.release_refresh_lease(session, shop_id=shop_id)
            return StoredTokens.of(state, latest).current()
        if leased:
            return await _refresh(state, latest)
        if utcnow() > deadline:
            raise ShopifyAdminError("another worker's token refresh did not finish")
        await asyncio.sleep(0.2)
        async with state.db.session() as session:
            shop = await repo.get_shop(session, domain=shop.domain) or latest
    return StoredTokens.of(state, shop).current()


async def _refresh(state: AppState, shop: AnyShop) -> str | None:
    """Renew the shop's token, under the lease this worker holds; gives the lease back."""
    assert shop.id is not None
    expires = shop.access_token_expires_at
    try:
        grant = await refresh_grant(
            state.shopify,
            shop=shop.domain,
            refresh_token=StoredTokens.of(state, shop).refresh or "",
            expires_at=aware(expires) if expires else None,
            refresh_token_expires_at=(
                aware(shop.refresh_token_expires_at) if shop.refresh_token_expires_at else None
            ),
        )
        if grant is not None:
            await store_grant(state, shop.domain, grant)
    except ShopifyAdminError as exc:
        if exc.code not in REFRESH_REVOKED:
            raise
        log.warning("the refresh token of %s was refused (%s); tokens dropped", shop.domain, exc)
        async with state.db.session() as session:
            await repo.drop_tokens(session, shop_id=shop.id)
        raise TokenRevoked(shop.domain) from exc
    finally:
        async with state.db.session() as session:
            await repo.release_refresh_lease(session, shop_id=shop.id)
    return grant.access_token if grant is not None else StoredTokens.of(state, shop).current()


async def installation_revoked(state: AppState, domain: str) -> bool | None:
    """Whether Shopify has revoked the app's access to this shop: True when it refuses the
    token, False when the token still works, None when it cannot tell (no token, or Shopify
    out of reach)."""
    async with state.db.session() as session:
        shop = await repo.get_shop(session, domain=domain)
    if shop is None or shop.id is None or not shop.installed:
        return None
    try:
        token = await access_token(state, shop)
        if token is None:
            return None
        await admin_graphql(state.shopify, shop=domain, access_token=token, query="{ shop { id } }")
    except TokenRevoked:
        return True
    except ShopifyAdminError as exc:
        return True if exc.status in (401, 403) else None
    return False
