"""Who the merchant is (App Bridge session tokens; a dev login in development) and their tokens."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlsplit

import jwt
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from app import repo
from app.errors import Forbidden, Unauthorized
from app.models import Shop, aware, utcnow
from app.shopify import SessionToken, ShopifyAuthError, is_shop_domain, verify_session_token
from app.shopify_admin import (
    REFRESH_REVOKED,
    AccessGrant,
    ShopifyAdminError,
    admin_graphql,
    exchange_session_token,
    refresh_grant,
)
from app.state import AppState

log = logging.getLogger("app.merchants")
DEV_COOKIE = "scw_dev_merchant"


@dataclass(frozen=True)
class Merchant:
    shop: Shop
    token: SessionToken

    @property
    def shop_id(self) -> int:
        assert self.shop.id is not None
        return self.shop.id


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.chat
    return state


# ---- development stand-in for App Bridge ----------------------------------------------


def dev_serializer(state: AppState) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state.settings.shopify_api_secret, salt="dev-merchant")


def dev_shop(request: Request) -> str | None:
    """The shop of a development login, if this is development and the cookie is good."""
    state = state_of(request)
    raw = request.cookies.get(DEV_COOKIE)
    if not state.settings.development or not raw:
        return None
    try:
        shop = str(dev_serializer(state).loads(raw, max_age=12 * 3600))
    except BadSignature:
        return None
    return shop if is_shop_domain(shop) else None  # a cookie from before a tighter rule


def mint_session_token(state: AppState, shop: str, *, dev: bool = True, lifetime: int = 60) -> str:
    """A session token as App Bridge issues it: HS256 with the app secret, aud = the API key."""
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": state.settings.shopify_api_key,
        "sub": "dev-merchant" if dev else "1",
        "exp": now + lifetime,
        "nbf": now,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": uuid.uuid4().hex,
    }
    if dev:
        claims["dev"] = True
    return jwt.encode(claims, state.settings.shopify_api_secret, algorithm="HS256")


# ---- authenticating API calls ---------------------------------------------------------


async def store_grant(state: AppState, shop: str, grant: AccessGrant) -> Shop:
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


def _check_claims(token: SessionToken) -> None:
    """What shopifyapp leaves unchecked: a token must expire, must not be used before its
    time, and must name the same shop as issuer and destination."""
    claims = token.claims
    for name in ("exp", "nbf"):
        if not isinstance(claims.get(name), int | float):
            raise ShopifyAuthError(f"missing_{name}", f"The session token has no {name!r}.")
    issuer = urlsplit(str(claims.get("iss", ""))).hostname or ""
    destination = urlsplit(str(claims.get("dest", ""))).hostname or ""
    if not issuer or issuer.lower() != destination.lower():
        raise ShopifyAuthError("invalid_iss", "The session token's issuer is not its shop.")


def session_token_of(state: AppState, request: Request, *, api: bool) -> SessionToken:
    """The verified session token of a request. API calls carry it in the Authorization
    header only; a document request (App Bridge opening the app) has it as `id_token`.
    The URL handed to shopifyapp is built from SHOPIFY_APP_URL, never from the Host header,
    because shopifyapp builds its redirects from it."""
    if api and not request.headers.get("authorization"):
        raise ShopifyAuthError(
            "missing_authorization",
            "Send the session token in the Authorization header (Bearer).",
            {"X-Shopify-Retry-Invalid-Session-Request": "1"},
        )
    query = request.url.query
    # Quoted: a '#' or '?' decoded into the path would move what shopifyapp reads as the query.
    path = quote(request.url.path)
    url = f"{state.settings.shopify_app_url}{path}" + (f"?{query}" if query else "")
    token = verify_session_token(
        state.shopify, method=request.method, url=url, headers=request.headers
    )
    _check_claims(token)
    return token


def _tokens_usable(state: AppState, shop: Shop) -> bool:
    """Whether the shop's stored tokens can still reach Shopify, without asking it: readable
    with our keys, and either the access token is current or the refresh token can renew it."""
    if not shop.access_token or state.tokens.decrypt(shop.access_token) is None:
        return False
    if shop.access_token_expires_at is None or aware(shop.access_token_expires_at) > utcnow():
        return True
    expires = shop.refresh_token_expires_at
    refresh = state.tokens.decrypt(shop.refresh_token)
    return refresh is not None and (expires is None or aware(expires) > utcnow())


async def authenticate(request: Request) -> Merchant:
    """The merchant behind an /api/admin request, from its session token; installs if needed,
    and recovers a shop whose tokens stopped working by exchanging the session token."""
    state = state_of(request)
    try:
        token = session_token_of(state, request, api=True)
    except ShopifyAuthError as exc:
        # API calls always get 401 and the header that makes App Bridge retry with a new token.
        raise Unauthorized(
            exc.code, exc.message, headers={"X-Shopify-Retry-Invalid-Session-Request": "1"}
        ) from exc
    async with state.db.session() as session:
        shop = await repo.get_shop(session, domain=token.shop)
    if shop is None or not shop.installed or not _tokens_usable(state, shop):
        if token.claims.get("dev") and state.settings.development:
            async with state.db.session() as session:
                shop = await repo.install_shop(session, domain=token.shop)
        else:
            # Shopify managed installation, or tokens lost to a revoked refresh or a dropped
            # encryption key: trade the session token for a new offline token.
            try:
                grant = await exchange_session_token(state.shopify, token)
            except ShopifyAdminError as exc:
                log.warning("token exchange for %s failed: %s", token.shop, exc)
                raise Forbidden(
                    "install_incomplete",
                    "The app could not finish installing on this shop; reopen it from Shopify.",
                ) from exc
            shop = await store_grant(state, token.shop, grant)
    return Merchant(shop=shop, token=token)


REFRESH_LEASE = timedelta(seconds=30)


class TokenRevoked(Exception):
    """Shopify refused the shop's refresh token for good; the stored tokens were dropped."""


def _current(state: AppState, shop: Shop) -> str | None:
    """The shop's access token while it has not expired."""
    expires = shop.access_token_expires_at
    return (
        state.tokens.decrypt(shop.access_token)
        if not expires or aware(expires) > utcnow()
        else None
    )


def _refresh_due(state: AppState, shop: Shop) -> bool:
    """Whether the shop's token expires within a minute and a refresh token can renew it."""
    expires = shop.access_token_expires_at
    return (
        expires is not None
        and aware(expires) <= utcnow() + timedelta(seconds=60)
        and state.tokens.decrypt(shop.access_token) is not None
        and state.tokens.decrypt(shop.refresh_token) is not None
    )


async def access_token(state: AppState, shop: Shop) -> str | None:
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
    while _refresh_due(state, shop):
        async with state.db.session() as session:
            leased = await repo.take_refresh_lease(
                session, shop_id=shop_id, until=utcnow() + REFRESH_LEASE
            )
            latest = await repo.get_shop(session, domain=shop.domain)
        if latest is None:
            return None
        if leased and not _refresh_due(state, latest):
            async with state.db.session() as session:
                await repo.release_refresh_lease(session, shop_id=shop_id)
            return _current(state, latest)
        if leased:
            return await _refresh(state, latest)
        if utcnow() > deadline:
            raise ShopifyAdminError("another worker's token refresh did not finish")
        await asyncio.sleep(0.2)
        async with state.db.session() as session:
            shop = await repo.get_shop(session, domain=shop.domain) or latest
    return _current(state, shop)


async def _refresh(state: AppState, shop: Shop) -> str | None:
    """Renew the shop's token, under the lease this worker holds; gives the lease back."""
    assert shop.id is not None
    expires = shop.access_token_expires_at
    try:
        grant = await refresh_grant(
            state.shopify,
            shop=shop.domain,
            refresh_token=state.tokens.decrypt(shop.refresh_token) or "",
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
    return grant.access_token if grant is not None else _current(state, shop)


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


STOREFRONT_SETTINGS_MUTATION = """
mutation SetChatSettings($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) { userErrors { field message } }
}
"""
CLEAR_SETTINGS_MUTATION = """
mutation ClearChatSettings($metafields: [MetafieldIdentifierInput!]!) {
  metafieldsDelete(metafields: $metafields) { userErrors { field message } }
}
"""


async def publish_storefront_settings(state: AppState, shop: Shop) -> bool:
    """Greeting and colour go to app-owned metafields, which the theme block reads in Liquid;
    a cleared one is deleted there, so that the storefront falls back to its default."""
    try:
        token = await access_token(state, shop)
        if token is None:
            return False
        installation = await admin_graphql(
            state.shopify,
            shop=shop.domain,
            access_token=token,
            query="{ currentAppInstallation { id } }",
        )
        owner = installation["currentAppInstallation"]["id"]
        values = (
            ("greeting", "single_line_text_field", shop.greeting),
            ("accent_color", "color", shop.accent_color),
        )
        changes = (
            (
                STOREFRONT_SETTINGS_MUTATION,
                "metafieldsSet",
                [
                    {"ownerId": owner, "namespace": "chat", "key": key, "type": kind, "value": v}
                    for key, kind, v in values
                    if v
                ],
            ),
            (
                CLEAR_SETTINGS_MUTATION,
                "metafieldsDelete",
                [
                    {"ownerId": owner, "namespace": "chat", "key": key}
                    for key, _, v in values
                    if not v
                ],
            ),
        )
        for mutation, name, metafields in changes:
            if not metafields:
                continue
            result = await admin_graphql(
                state.shopify,
                shop=shop.domain,
                access_token=token,
                query=mutation,
                variables={"metafields": metafields},
            )
            errors = (result.get(name) or {}).get("userErrors") or []
            if errors:
                raise ShopifyAdminError(str(errors))
        return True
    except (ShopifyAdminError, TokenRevoked, KeyError, TypeError) as exc:
        log.warning("could not publish storefront settings of %s: %s", shop.domain, exc)
        return False
