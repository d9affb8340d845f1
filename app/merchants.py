"""Who the merchant is: App Bridge session tokens (a dev login in development), and the
install a first request makes (token exchange, the catalog's import, the storefront settings)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import jwt
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from app import repo
from app.catalog import sync as catalog_sync
from app.errors import Forbidden, Unauthorized
from app.repo.rows import AnyShop
from app.shop_tokens import StoredTokens, store_grant
from app.shopify import SessionToken, ShopifyAuthError, is_shop_domain, verify_session_token
from app.shopify_admin import (
    ShopifyAdminError,
    exchange_session_token,
)
from app.state import AppState, state_of
from app.storefront_settings import publish_storefront_settings

log = logging.getLogger("app.merchants")
DEV_COOKIE = "scw_dev_merchant"


@dataclass(frozen=True)
class Merchant:
    shop: AnyShop
    token: SessionToken

    @property
    def shop_id(self) -> int:
        assert self.shop.id is not None
        return self.shop.id


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
    shop: AnyShop | None
    async with state.db.session() as session:
        shop = await repo.get_shop(session, domain=token.shop)
    if shop is None or not shop.installed or not StoredTokens.of(state, shop).usable():
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
            await catalog_sync.start_import(state, shop)
            state.sweeper.spawn(publish_storefront_settings(state, shop))
    return Merchant(shop=shop, token=token)
