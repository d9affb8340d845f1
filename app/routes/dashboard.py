"""The embedded dashboard's pages (Jinja2), and the development login that stands in for Shopify."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app import repo
from app.dev.demo import DEMO_SHOP
from app.errors import Unauthorized
from app.merchants import (
    DEV_COOKIE,
    dev_serializer,
    dev_shop,
    mint_session_token,
    session_token_of,
)
from app.routes.auth import begin_install, frame_ancestors
from app.shopify import ShopifyAuthError, is_shop_domain, verify_oauth_query
from app.state import state_of
from app.validation import read_form, uuid4_field

APP = Path(__file__).resolve().parent.parent
templates = Environment(
    loader=FileSystemLoader(APP / "templates"), autoescape=select_autoescape(["html"])
)
PAGES = {
    "conversations": "Conversations",
    "inbox": "Inbox",
    "stats": "Statistics",
    "settings": "Settings",
}


def _render(
    request: Request, template: str, shop: str, *, dev_login: bool, **context: object
) -> HTMLResponse:
    """A page; App Bridge drives it inside the Shopify admin (also under `shopify app dev`),
    the development login outside it."""
    state = state_of(request)
    html = templates.get_template(template).render(
        shop=shop,
        api_key=state.settings.shopify_api_key,
        development=dev_login,
        pages=PAGES,
        **context,
    )
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": frame_ancestors(shop),
    }
    return HTMLResponse(html, headers=headers)


async def _page_shop(request: Request) -> str | Response:
    """The shop a page is for: a verified session token, or in development the dev login.

    A page opened by the Shopify admin (id_token, embedded=1 or host in its query) always
    goes through Shopify's session token, in development too (`shopify app dev`)."""
    query = request.query_params
    state = state_of(request)
    embedded = "id_token" in query or query.get("embedded") == "1" or "host" in query
    if not embedded:
        shop = dev_shop(request)
        if shop:
            return shop
        if state.settings.development:
            return RedirectResponse("/dev/login", 303)
    try:
        token = session_token_of(state, request, api=False)
    except ShopifyAuthError as exc:
        # A missing or stale id_token: Shopify's package redirects to the page that renews it.
        body = "" if exc.status == 302 else "Open this app from your Shopify admin."
        return Response(body, status_code=exc.status, headers=exc.headers)
    return token.shop


async def home(request: Request) -> Response:
    query = request.query_params
    if "hmac" in query and "id_token" not in query:
        # Shopify opens the app URL with shop, hmac and timestamp on install and on launch.
        state = state_of(request)
        try:
            params = verify_oauth_query(state.shopify, request.url.query)
        except ShopifyAuthError as exc:
            raise Unauthorized(exc.code, exc.message) from exc
        async with state.db.session() as session:
            shop = await repo.get_shop(session, domain=params["shop"])
        if shop is None or not shop.installed or not shop.access_token:
            return begin_install(request, params["shop"])
        return RedirectResponse(
            f"https://{params['shop']}/admin/apps/{state.settings.shopify_api_key}", 302
        )
    return await conversations_page(request)


def _page(template: str, page: str, *path_params: str) -> Callable[[Request], Awaitable[Response]]:
    """A dashboard page: the shell the merchant's browser fills from /api/admin/."""

    async def handler(request: Request) -> Response:
        shop = await _page_shop(request)
        if isinstance(shop, Response):
            return shop
        # The page's script fetches /api/admin/... with these: a bad one is refused here, too.
        params = {name: uuid4_field(request.path_params[name], name) for name in path_params}
        dev_login = shop == dev_shop(request)
        return _render(request, template, shop, page=page, dev_login=dev_login, **params)

    return handler


conversations_page = _page("conversations.html", "conversations")
conversation_page = _page("conversation.html", "conversations", "conversation_id")
inbox_page = _page("inbox.html", "inbox")
stats_page = _page("stats.html", "stats")
settings_page = _page("settings.html", "settings")


async def dev_login(request: Request) -> Response:
    """Development only: pick a shop and act as its merchant, as App Bridge would in the admin."""
    error = ""
    if request.method == "POST":
        form = await read_form(request)
        shop = form.get("shop", "").strip().lower()
        if is_shop_domain(shop):
            response = RedirectResponse("/", 303)
            response.set_cookie(
                DEV_COOKIE,
                dev_serializer(state_of(request)).dumps(shop),
                httponly=True,
                samesite="lax",
                max_age=12 * 3600,
            )
            return response
        error = "Enter a shop domain like demo-shop.myshopify.com."
    html = templates.get_template("dev_login.html").render(default_shop=DEMO_SHOP, error=error)
    return HTMLResponse(html, status_code=400 if error else 200)


async def dev_session_token(request: Request) -> Response:
    shop = dev_shop(request)
    if not shop:
        raise Unauthorized("not_logged_in", "Log in at /dev/login first.")
    return JSONResponse(
        {"token": mint_session_token(state_of(request), shop)},
        headers={"Cache-Control": "no-store"},
    )


def dashboard_routes(development: bool) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/conversations/{conversation_id}", conversation_page, methods=["GET"]),
        Route("/inbox", inbox_page, methods=["GET"]),
        Route("/stats", stats_page, methods=["GET"]),
        Route("/settings", settings_page, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=APP / "static"), name="static"),
    ]
    if development:
        routes += [
            Route("/dev/login", dev_login, methods=["GET", "POST"]),
            Route("/dev/session-token", dev_session_token, methods=["GET"]),
        ]
    return routes
