"""Who the merchant is (App Bridge session tokens; a dev login in development) and their tokens."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from app import repo
from app.errors import Forbidden, Unauthorized
from app.models import Shop, aware, utcnow
from app.shopify import (
    AccessGrant,
    SessionToken,
    ShopifyAdminError,
    ShopifyAuthError,
    admin_graphql,
    exchange_session_token,
    is_shop_domain,
    refresh_grant,
    verify_session_token,
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


async def authenticate(request: Request) -> Merchant:
    """The merchant behind an /api/admin request, from its session token; installs if needed."""
    state = state_of(request)
    try:
        token = verify_session_token(
            state.shopify, method=request.method, url=str(request.url), headers=request.headers
        )
    except ShopifyAuthError as exc:
        # API calls always get 401 and the header that makes App Bridge retry with a new token.
        raise Unauthorized(
            exc.code, exc.message, headers={"X-Shopify-Retry-Invalid-Session-Request": "1"}
        ) from exc
    async with state.db.session() as session:
        shop = await repo.get_shop(session, domain=token.shop)
    if shop is None or not shop.installed or not shop.access_token:
        if token.claims.get("dev") and state.settings.development:
            async with state.db.session() as session:
                shop = await repo.install_shop(session, domain=token.shop)
        else:
            # Shopify managed installation: trade the session token for an offline token.
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


async def access_token(state: AppState, shop: Shop) -> str | None:
    """The shop's offline token, refreshed first when it is about to expire."""
    tokens = state.tokens
    current = tokens.decrypt(shop.access_token)
    refresh = tokens.decrypt(shop.refresh_token)
    expires = aware(shop.access_token_expires_at) if shop.access_token_expires_at else None
    if current is None or refresh is None or expires is None:
        return current
    if expires > utcnow() + timedelta(seconds=60):
        return current
    grant = await refresh_grant(
        state.shopify,
        shop=shop.domain,
        refresh_token=refresh,
        expires_at=expires,
        refresh_token_expires_at=(
            aware(shop.refresh_token_expires_at) if shop.refresh_token_expires_at else None
        ),
    )
    if grant is None:
        return current
    await store_grant(state, shop.domain, grant)
    return grant.access_token


STOREFRONT_SETTINGS_MUTATION = """
mutation SetChatSettings($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) { userErrors { field message } }
}
"""


async def publish_storefront_settings(state: AppState, shop: Shop) -> bool:
    """Greeting and colour go to app-owned metafields, which the theme block reads in Liquid."""
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
        metafields = [
            {"ownerId": owner, "namespace": "chat", "key": key, "type": kind, "value": value}
            for key, kind, value in (
                ("greeting", "single_line_text_field", shop.greeting),
                ("accent_color", "color", shop.accent_color),
            )
            if value
        ]
        if metafields:
            result = await admin_graphql(
                state.shopify,
                shop=shop.domain,
                access_token=token,
                query=STOREFRONT_SETTINGS_MUTATION,
                variables={"metafields": metafields},
            )
            errors = result.get("metafieldsSet", {}).get("userErrors") or []
            if errors:
                raise ShopifyAdminError(str(errors))
        return True
    except (ShopifyAdminError, KeyError, TypeError) as exc:
        log.warning("could not publish storefront settings of %s: %s", shop.domain, exc)
        return False
