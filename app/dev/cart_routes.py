"""The local storefront's Ajax Cart API, at Shopify's own paths on the storefront's origin:
POST /cart/add.js and GET /cart.js (development only)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import repo
from app.dev.cart import (
    CART_COOKIE,
    MAX_LINES,
    MAX_QUANTITY,
    CartError,
    Carts,
    bad_request,
    cart_json,
    find_variant,
    is_token,
    line_item,
    new_token,
    rendered_sections,
)
from app.dev.catalog import STOREFRONT_PATH
from app.dev.demo import DEMO_SHOP
from app.errors import ApiError
from app.repo.catalog import StoredProduct
from app.validation import ascii_int, read_form, read_json_object

_SECTION = re.compile(r"[A-Za-z0-9_-]{1,64}")
LARGEST_ID = 2**63 - 1
NO_STORE = {"Cache-Control": "no-store"}


def _whole(value: object, *, high: int) -> int | None:
    """A JSON number or a string of ASCII digits, from 1 to `high`; None if anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1 <= value <= high else None
    return ascii_int(value, low=1, high=high) if isinstance(value, str) else None


def _item(data: object) -> tuple[int, int]:
    if not isinstance(data, dict):
        raise bad_request("items")
    variant_id = _whole(data.get("id"), high=LARGEST_ID)
    if variant_id is None:
        raise bad_request("id")
    raw = data.get("quantity", 1)
    quantity = 1 if raw == "" else _whole(raw, high=MAX_QUANTITY)  # "": a form's empty field
    if quantity is None:
        raise bad_request("quantity")
    return variant_id, quantity


def _sections(raw: object) -> list[str]:
    names = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return [n.strip() for n in names if isinstance(n, str) and _SECTION.fullmatch(n.strip())]


async def _read_add(request: Request) -> tuple[list[tuple[int, int]], list[str], bool]:
    """The items to add, the sections to render, and whether the request listed `items`
    (Shopify answers a list with {"items": [...]} and a single id with the line itself).
    `sections_url` is accepted and not needed: the one section here is the same on every page."""
    data: dict[str, Any]
    if request.headers.get("content-type", "").startswith("application/json"):
        data = await read_json_object(request)
    else:
        data = dict(await read_form(request))
    if "items" in data:
        items = data["items"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_LINES:
            raise bad_request("items")
        return [_item(item) for item in items], _sections(data.get("sections")), True
    return [_item(data)], _sections(data.get("sections")), False


class CartApi:
    def __init__(self, carts: Carts) -> None:
        self.carts = carts

    async def _catalog(self, request: Request) -> tuple[list[StoredProduct], str | None]:
        async with request.app.state.chat.db.session() as session:
            shop = await repo.get_shop(session, domain=DEMO_SHOP)
            if shop is None or shop.id is None:
                return [], None
            # The demo catalog is small: the whole of it is read, and its variants searched.
            products = await repo.visible_product_list(session, shop_id=shop.id)
            catalog = await repo.catalog_of(session, shop_id=shop.id)
        return products, catalog.currency if catalog else None

    async def add(self, request: Request) -> Response:
        cookie = request.cookies.get(CART_COOKIE)
        token = cookie if cookie and is_token(cookie) else new_token()
        try:
            try:
                items, sections, listed = await _read_add(request)
            except ApiError as exc:  # the body itself: not JSON, too large, too slow
                raise CartError(exc.status_code, exc.message) from exc
            products, _ = await self._catalog(request)
            found = []
            # Every item is checked before any is added: Shopify adds all of them or none.
            for variant_id, quantity in items:
                match = find_variant(products, variant_id)
                if match is None:
                    raise CartError(422, "Cannot find variant")
                product, variant = match
                if not variant.available:
                    title = line_item(product, variant, 0, storefront_path="")["title"]
                    raise CartError(422, f"The product '{title}' is already sold out.")
                found.append((product, variant, quantity))
            added = [
                line_item(
                    product,
                    variant,
                    self.carts.add(token, variant.id, quantity),
                    storefront_path=STOREFRONT_PATH,
                )
                for product, variant, quantity in found
            ]
        except CartError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=NO_STORE)
        body: dict[str, Any] = {"items": added} if listed else added[0]
        if sections:
            body["sections"] = rendered_sections(sections, self.carts.count(token))
        response = JSONResponse(body, headers=NO_STORE)
        response.set_cookie(CART_COOKIE, token, httponly=True, samesite="lax")
        return response

    async def items(
        self, request: Request, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        products, currency = await self._catalog(request)
        items = []
        for variant_id, quantity in reversed(self.carts.lines(token).items()):
            match = find_variant(products, variant_id)
            if match is not None:  # a product no longer on sale leaves the cart
                product, variant = match
                items.append(line_item(product, variant, quantity, storefront_path=STOREFRONT_PATH))
        return items, currency

    async def cart(self, request: Request) -> Response:
        token = request.cookies.get(CART_COOKIE)
        token = token if is_token(token) else None
        items, currency = await self.items(request, token)
        return JSONResponse(
            cart_json(token or new_token(), items, currency=currency), headers=NO_STORE
        )
