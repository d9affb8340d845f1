"""Install by OAuth: /auth starts it, /auth/callback finishes it; /auth/session-token refreshes."""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app import repo
from app.catalog import sync as catalog_sync
from app.errors import BadRequest, Forbidden, Unauthorized
from app.shop_tokens import store_grant
from app.shopify import ShopifyAuthError, authorize_url, is_shop_domain, verify_oauth_query
from app.shopify_admin import ShopifyAdminError, exchange_code
from app.state import AppState, state_of
from app.storefront_settings import publish_storefront_settings

STATE_COOKIE = "scw_oauth_state"
STATE_MAX_AGE = 600


def _states(state: AppState) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state.settings.shopify_api_secret, salt="oauth-state")


def _verified(request: Request) -> dict[str, str]:
    try:
        return verify_oauth_query(state_of(request).shopify, request.url.query)
    except ShopifyAuthError as exc:
        if exc.code == "invalid_shop":
            raise BadRequest(exc.code, exc.message) from exc
        raise Unauthorized(exc.code, exc.message) from exc


def begin_install(request: Request, shop: str) -> Response:
    """Redirect to Shopify's consent screen with a state nonce kept in a signed cookie."""
    state = state_of(request)
    nonce = secrets.token_urlsafe(24)
    response = RedirectResponse(authorize_url(state.shopify, shop=shop, state=nonce), 302)
    response.set_cookie(
        STATE_COOKIE,
        _states(state).dumps({"nonce": nonce, "shop": shop}),
        max_age=STATE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=not state.settings.development,
        path="/auth",
    )
    return response


async def start(request: Request) -> Response:
    params = _verified(request)
    return begin_install(request, params["shop"])


async def callback(request: Request) -> Response:
    state = state_of(request)
    params = _verified(request)
    try:
        remembered = _states(state).loads(
            request.cookies.get(STATE_COOKIE, ""), max_age=STATE_MAX_AGE
        )
    except BadSignature as exc:
        raise Forbidden("invalid_state", "The install session expired; start again.") from exc
    # As bytes: compare_digest raises TypeError on a str with a non-ASCII character.
    nonce, state_param = str(remembered.get("nonce", "")), params.get("state", "")
    if not secrets.compare_digest(nonce.encode(), state_param.encode()):
        raise Forbidden("invalid_state", "The install state does not match; start again.")
    if remembered.get("shop") != params["shop"]:
        raise Forbidden("invalid_state", "The install was started for another shop.")
    code = params.get("code", "")
    if not code:
        raise BadRequest("missing_code", "Shopify sent no authorization code.")
    # The signed cookie is good for ten minutes; its nonce is good once.
    async with state.db.session() as session:
        fresh = await repo.use_oauth_nonce(session, nonce=str(remembered["nonce"])[:64])
    if not fresh:
        raise Forbidden("state_used", "This install link was used already; start again.")
    try:
        grant = await exchange_code(state.shopify, shop=params["shop"], code=code)
    except ShopifyAdminError as exc:
        raise Forbidden("code_exchange_failed", f"Shopify did not grant access: {exc}") from exc
    shop = await store_grant(state, params["shop"], grant)
    await catalog_sync.start_import(state, shop)  # installed or reinstalled: read its catalog
    # The widget learns the app's host from these metafields, before any settings are saved.
    state.sweeper.spawn(publish_storefront_settings(state, shop))
    response = RedirectResponse(
        f"https://{params['shop']}/admin/apps/{state.settings.shopify_api_key}", 302
    )
    response.delete_cookie(STATE_COOKIE, path="/auth")
    return response


def frame_ancestors(shop: str) -> str:
    """The Content-Security-Policy of a page: only the shop's admin may frame it."""
    assert is_shop_domain(shop), "a page is only ever framed for a verified shop"
    return f"frame-ancestors https://{shop} https://admin.shopify.com"


def _check_reload_path(request: Request) -> None:
    path = request.query_params.get("shopify-reload", "")
    # Where App Bridge goes back to: a path of this app, never another origin ('//host').
    if not path.startswith("/") or path.startswith(("//", "/\\")) or not path.isprintable():
        raise BadRequest("invalid_shopify_reload", "shopify-reload must be a path of this app.")


async def session_token_page(request: Request) -> Response:
    """Shopify's page that fetches a fresh session token with App Bridge and reloads."""
    state = state_of(request)
    shops = request.query_params.getlist("shop")
    # Checked here: the page names the shop in a header, where a CR/LF broke the response.
    if len(shops) != 1 or not is_shop_domain(shops[0]):
        raise BadRequest("invalid_shop", "shop must be one myshopify.com domain.")
    shop = shops[0].lower()
    _check_reload_path(request)
    result = state.shopify.app.app_home_patch_id_token(
        {
            "method": request.method,
            "headers": dict(request.headers),
            "url": str(request.url),
            "body": "",
        }
    )
    if not result.ok:
        raise BadRequest(result.log.code, "This page needs a shop and a shopify-reload path.")
    # shopifyapp's policy names the shop as it read it; ours names the one checked above.
    headers = {**result.response.headers, "Content-Security-Policy": frame_ancestors(shop)}
    return HTMLResponse(result.response.body, status_code=result.response.status, headers=headers)


routes = [
    Route("/auth", start, methods=["GET"]),
    Route("/auth/callback", callback, methods=["GET"]),
    Route("/auth/session-token", session_token_page, methods=["GET"]),
]
