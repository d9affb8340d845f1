"""The local storefront (development only): a product page with the real widget."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app import repo
from app.demo import DEMO_SHOP
from app.storefront import (
    ASSETS,
    CUSTOMER_COOKIE,
    LOCALES,
    PROXY_PREFIX,
    AppProxyEmulator,
    render_chat_embed,
)
from app.validation import read_form

templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


async def storefront(request: Request) -> Response:
    locale = request.query_params.get("locale", "en")
    locale = locale if locale in LOCALES else "en"
    async with request.app.state.chat.db.session() as session:
        shop = await repo.get_shop(session, domain=DEMO_SHOP)
    published = {"greeting": shop.greeting, "accent_color": shop.accent_color} if shop else {}
    widget = render_chat_embed(shop=DEMO_SHOP, locale=locale, app_settings=published)
    page = templates.get_template("storefront.html").render(
        shop=DEMO_SHOP,
        widget=Markup(widget),
        locale=locale,
        locales=LOCALES,
        customer=request.cookies.get(CUSTOMER_COOKIE),
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


async def switch_customer(request: Request) -> Response:
    form = await read_form(request)
    customer = form.get("customer_id", "").strip()
    response = RedirectResponse("/storefront", status_code=303)
    if customer.isdigit():
        response.set_cookie(CUSTOMER_COOKIE, customer, httponly=True, samesite="lax")
    else:
        response.delete_cookie(CUSTOMER_COOKIE)
    return response


def storefront_routes(emulator: AppProxyEmulator) -> list[BaseRoute]:
    return [
        Route("/storefront", storefront, methods=["GET"]),
        Route("/storefront/customer", switch_customer, methods=["POST"]),
        Mount("/storefront/assets", app=StaticFiles(directory=ASSETS), name="storefront-assets"),
        Route(PROXY_PREFIX + "/{rest:path}", emulator),
    ]
