"""The local storefront's cart, answering as Shopify's Ajax Cart API does (/cart/add.js,
/cart.js), so that a widget adding to the cart can be tried against it."""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

from app.models.products import Variant
from app.repo.catalog import StoredProduct

CART_COOKIE = "cart"  # Shopify's own name for it
_TOKEN = re.compile(r"[0-9a-f]{32}")
MAX_CARTS = 1000
MAX_LINES = 100
MAX_QUANTITY = 10_000
MAX_SECTIONS = 5  # Shopify renders at most five sections per request
BUBBLE = "cart-icon-bubble"


class CartError(Exception):
    """An answer in Shopify's own error shape: {"status", "message", "description"}."""

    def __init__(self, status: int, description: str, message: str = "Cart Error") -> None:
        super().__init__(description)
        self.status = status
        self.message = message
        self.description = description

    def body(self) -> dict[str, Any]:
        # Shopify writes a 400's status as its name, a 422's as the number.
        status: int | str = "bad_request" if self.status == 400 else self.status
        return {"status": status, "message": self.message, "description": self.description}


def bad_request(field: str) -> CartError:
    return CartError(
        400, f"Required parameter missing or invalid: {field}", "Parameter Missing or Invalid"
    )


def new_token() -> str:
    return secrets.token_hex(16)


def is_token(value: str | None) -> bool:
    return bool(value and _TOKEN.fullmatch(value))


class Carts:
    """Every browser's cart, by its cookie's token: variant id -> quantity.

    Kept in this process's memory, which is acceptable only because this is the development
    storefront (one process; a restart empties the carts as an expired cookie would). The
    oldest carts go beyond MAX_CARTS, so that a client minting tokens cannot fill memory."""

    def __init__(self, limit: int = MAX_CARTS) -> None:
        self.limit = limit
        self._carts: OrderedDict[str, dict[int, int]] = OrderedDict()

    def lines(self, token: str | None) -> dict[int, int]:
        return dict(self._carts.get(token, {})) if token else {}

    def count(self, token: str | None) -> int:
        return sum(self.lines(token).values())

    def add(self, token: str, variant_id: int, quantity: int) -> int:
        """Add to the cart; returns the line's new quantity."""
        cart = self._carts.setdefault(token, {})
        self._carts.move_to_end(token)
        while len(self._carts) > self.limit:
            self._carts.popitem(last=False)
        if variant_id not in cart and len(cart) >= MAX_LINES:
            raise CartError(422, f"A cart holds at most {MAX_LINES} different products.")
        total = cart.get(variant_id, 0) + quantity
        if total > MAX_QUANTITY:
            raise CartError(422, f"You can't add more than {MAX_QUANTITY} of one item.")
        cart[variant_id] = total
        return total


def find_variant(
    products: Sequence[StoredProduct], variant_id: int
) -> tuple[StoredProduct, Variant] | None:
    for product in products:
        for variant in product.variants:
            if variant.id == variant_id:
                return product, variant
    return None


def cents(amount: Decimal | None) -> int | None:
    return None if amount is None else int(amount * 100)


def line_item(
    product: StoredProduct, variant: Variant, quantity: int, *, storefront_path: str
) -> dict[str, Any]:
    """A line as Shopify's cart.js writes one (the fields a theme or an app reads)."""
    price = cents(variant.price) or 0
    default = variant.title == "Default Title"
    return {
        "id": variant.id,
        "key": f"{variant.id}:{product.product_id}",
        "variant_id": variant.id,
        "product_id": product.product_id,
        "title": product.title if default else f"{product.title} - {variant.title}",
        "product_title": product.title,
        "variant_title": None if default else variant.title,
        "quantity": quantity,
        "price": price,
        "original_price": price,
        "final_price": price,
        "line_price": price * quantity,
        "final_line_price": price * quantity,
        "compare_at_price": cents(variant.compare_at_price),
        "sku": variant.sku,
        "vendor": product.vendor,
        "product_type": product.product_type,
        "handle": product.handle,
        "url": f"{storefront_path}/products/{product.handle}?variant={variant.id}",
        "image": product.image_url,
        "options_with_values": [{"name": k, "value": v} for k, v in variant.options.items()],
        "properties": {},
        "requires_shipping": True,
    }


def cart_json(token: str, items: list[dict[str, Any]], *, currency: str | None) -> dict[str, Any]:
    total = sum(int(item["line_price"]) for item in items)
    return {
        "token": token,
        "note": None,
        "attributes": {},
        "original_total_price": total,
        "total_price": total,
        "total_discount": 0,
        "total_weight": 0,
        "item_count": sum(int(item["quantity"]) for item in items),
        "items": items,
        "requires_shipping": bool(items),
        "currency": currency or "USD",
        "items_subtotal_price": total,
        "cart_level_discount_applications": [],
    }


def bubble_html(count: int, cart_label: str = "Cart") -> str:
    """The inside of the header's #cart-icon-bubble, as Dawn's cart-icon-bubble section."""
    icon = (
        '<svg class="icon icon-cart" aria-hidden="true" focusable="false" viewBox="0 0 40 40" '
        'width="28" height="28"><path fill="none" stroke="currentColor" stroke-width="2" '
        'd="M8 12h24l-2 20H10zM15 12a5 5 0 0 1 10 0"/></svg>'
    )
    hidden = f'<span class="visually-hidden">{escape(cart_label)}</span>'
    if count <= 0:
        return icon + hidden
    noun = "item" if count == 1 else "items"
    return (
        f'{icon}{hidden}<div class="cart-count-bubble"><span aria-hidden="true">{count}</span>'
        f'<span class="visually-hidden">{count} {noun}</span></div>'
    )


def rendered_sections(names: Sequence[str], count: int) -> dict[str, str | None]:
    """The Section Rendering API's answer: each section wrapped as Shopify wraps it; a
    section the theme does not have is null."""
    return {
        name: f'<div id="shopify-section-{BUBBLE}" class="shopify-section">'
        f"{bubble_html(count)}</div>"
        if name == BUBBLE
        else None
        for name in names[:MAX_SECTIONS]
    }
