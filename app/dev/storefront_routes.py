"""The local storefront (development only): the demo shop's pages with the real widget, its
product pictures, its cart, and the emulated app proxy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app import repo
from app.dev import catalog as demo
from app.dev.cart import CART_COOKIE, Carts, bubble_html, cart_json, is_token
from app.dev.cart_routes import CartApi
from app.dev.demo import DEMO_SHOP, DEMO_SHOP_NAME
from app.dev.images import product_svg
from app.dev.storefront import (
    ASSETS,
    CUSTOMER_COOKIE,
    LOCALES,
    PROXY_PREFIX,
    AppProxyEmulator,
    liquid_product,
    render_block,
    render_chat_embed,
)
from app.errors import NotFound
from app.validation import is_customer_id, is_product_handle, read_form

templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
NO_STORE = {"Cache-Control": "no-store"}
# A Shopify handle (app/catalog/products.py reads them so): anything else is no product, and
# is not sent to the database (PostgreSQL's text holds no NUL).


def money(amount: Decimal | int | None, currency: str | None = "USD") -> str:
    if amount is None:
        return ""
    value = Decimal(amount) / 100 if isinstance(amount, int) else amount
    return f"${value:,.2f}" if currency in (None, "USD") else f"{value:,.2f} {currency}"


def local_image(url: str | None) -> str | None:
    """A demo picture by its path: the seeded base URL (the app's) need not be the host this
    page was reached on (a test server's port, a tunnel); any other picture as it is."""
    if url and urlsplit(url).path.startswith(f"{demo.STOREFRONT_PATH}/images/"):
        return urlsplit(url).path
    return url


templates.filters["money"] = money
templates.filters["local_image"] = local_image


class StorefrontPages:
    def __init__(self, carts: Carts) -> None:
        self.carts = carts

    async def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        product: dict[str, Any] | None = None,
        title: str = "",
        **context: Any,
    ) -> Response:
        locale = request.query_params.get("locale", "en")
        locale = locale if locale in LOCALES else "en"
        async with request.app.state.chat.db.session() as session:
            shop = await repo.get_shop(session, domain=DEMO_SHOP)
        settings = request.app.state.chat.settings
        # As publish_storefront_settings writes them: this app's URL, and the effective mode.
        published = {
            "app_url": settings.shopify_app_url,
            "direct_streams": settings.direct_streams_of(shop.direct_streams if shop else None),
        }
        if shop is not None:
            published.update(greeting=shop.greeting, accent_color=shop.accent_color)
        customer = request.cookies.get(CUSTOMER_COOKIE)
        widget = render_chat_embed(
            shop=DEMO_SHOP,
            locale=locale,
            app_settings=published,
            product=product,
            customer_id=customer if customer and is_customer_id(customer) else None,
        )
        # The "Ask about this product" app block, as a merchant would add it to the product
        # template; ?ask=product plays its "one conversation per product" setting.
        scope = "product" if request.query_params.get("ask") == "product" else "shop"
        ask = (
            render_block(
                "ask-product.liquid",
                shop=DEMO_SHOP,
                locale=locale,
                settings={"conversation": scope},
                product=product,
            )
            if product is not None
            else ""
        )
        token = request.cookies.get(CART_COOKIE)
        page = templates.get_template(template).render(
            shop=DEMO_SHOP,
            shop_name=DEMO_SHOP_NAME,
            title=title,
            widget=Markup(widget),
            ask=Markup(ask),
            locale=locale,
            locales=LOCALES,
            customer=customer,
            cart_bubble=Markup(bubble_html(self.carts.count(token if is_token(token) else None))),
            base=demo.STOREFRONT_PATH,
            **context,
        )
        return HTMLResponse(page, status_code=status_code, headers=NO_STORE)

    async def _shop_id(self, request: Request) -> int | None:
        async with request.app.state.chat.db.session() as session:
            shop = await repo.get_shop(session, domain=DEMO_SHOP)
        return shop.id if shop else None

    async def home(self, request: Request) -> Response:
        return await self.render(request, "storefront/home.html", title="Merino Crew Sweater")

    async def collection(self, request: Request) -> Response:
        shop_id = await self._shop_id(request)
        products = []
        if shop_id is not None:
            async with request.app.state.chat.db.session() as session:
                products = await repo.visible_product_list(session, shop_id=shop_id)
        return await self.render(
            request, "storefront/collection.html", title="All products", products=products
        )

    async def not_found(self, request: Request) -> Response:
        return await self.render(
            request, "storefront/not_found.html", status_code=404, title="Page not found"
        )

    async def product(self, request: Request) -> Response:
        shop_id = await self._shop_id(request)
        handle = request.path_params["handle"]
        found = None
        if shop_id is not None and is_product_handle(handle):
            async with request.app.state.chat.db.session() as session:
                found = await repo.visible_product(session, shop_id=shop_id, handle=handle)
        if found is None:  # drafts, archived and unpublished products too, as on Shopify
            return await self.not_found(request)
        liquid = liquid_product(found, storefront_path=demo.STOREFRONT_PATH)
        return await self.render(
            request,
            "storefront/product.html",
            title=found.title,
            product=liquid,
            item=found,
            liquid=liquid,
        )

    async def policy(self, request: Request) -> Response:
        shop_id = await self._shop_id(request)
        policies = []
        if shop_id is not None:
            async with request.app.state.chat.db.session() as session:
                policies = await repo.shop_policies(session, shop_id=shop_id)
        slug = request.path_params["slug"]
        policy = next((p for p in policies if demo.policy_slug(p.kind) == slug), None)
        if policy is None:
            return await self.not_found(request)
        return await self.render(
            request, "storefront/policy.html", title=policy.title, policy=policy
        )

    async def cart(self, request: Request) -> Response:
        token = request.cookies.get(CART_COOKIE)
        token = token if is_token(token) else None
        items, currency = await CartApi(self.carts).items(request, token)
        return await self.render(
            request,
            "storefront/cart.html",
            title="Your cart",
            cart=cart_json(token or "", items, currency=currency),
        )


async def product_image(request: Request) -> Response:
    product = demo.find(request.path_params["handle"])
    if product is None:
        raise NotFound("not_found", "No such picture.")
    return Response(
        product_svg(product),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=300"},
    )


async def switch_customer(request: Request) -> Response:
    form = await read_form(request)
    customer = form.get("customer_id", "").strip()
    response = RedirectResponse("/storefront", status_code=303)
    if is_customer_id(customer):
        response.set_cookie(CUSTOMER_COOKIE, customer, httponly=True, samesite="lax")
    else:
        response.delete_cookie(CUSTOMER_COOKIE)
    return response


def storefront_routes(emulator: AppProxyEmulator) -> list[BaseRoute]:
    carts = Carts()
    pages = StorefrontPages(carts)
    api = CartApi(carts)
    base = demo.STOREFRONT_PATH
    return [
        Route(base, pages.home, methods=["GET"]),
        Route(f"{base}/collections/all", pages.collection, methods=["GET"]),
        Route(f"{base}/products/{{handle}}", pages.product, methods=["GET"]),
        Route(f"{base}/policies/{{slug}}", pages.policy, methods=["GET"]),
        Route(f"{base}/cart", pages.cart, methods=["GET"]),
        Route(f"{base}/images/{{handle}}.svg", product_image, methods=["GET"]),
        Route(f"{base}/customer", switch_customer, methods=["POST"]),
        Mount(f"{base}/assets", app=StaticFiles(directory=ASSETS), name="storefront-assets"),
        # Shopify's Ajax Cart API lives at the storefront's root, beside the theme's pages.
        Route("/cart/add.js", api.add, methods=["POST"]),
        Route("/cart.js", api.cart, methods=["GET"]),
        Route(PROXY_PREFIX + "/{rest:path}", emulator),
    ]
