"""Product cards: what a reply shows of a product, built from the catalog only (never from
what a model wrote), in the shape of the `products` event."""

from __future__ import annotations

from decimal import Decimal

from app.models.products import Variant
from app.repo.catalog import StoredProduct

MAX_CARDS = 6


def _money(amount: Decimal | None, currency: str | None) -> dict[str, str] | None:
    if amount is None:
        return None
    return {"amount": f"{amount:.2f}", "currency_code": currency or ""}


def best_variant(product: StoredProduct, wanted: dict[str, str] | None = None) -> Variant | None:
    """The variant a card adds to the cart: the one matching the options asked for, else the
    first available, else the first."""
    variants = product.variants
    if wanted:
        matching = [
            v
            for v in variants
            if all(v.options.get(k, "").lower() == w.lower() for k, w in wanted.items())
        ]
        variants = tuple(matching) or variants
    return next((v for v in variants if v.available), variants[0] if variants else None)


def card(product: StoredProduct, variant: Variant | None = None) -> dict[str, object]:
    variant = variant or best_variant(product)
    price = variant.price if variant else product.price_min
    compare = variant.compare_at_price if variant else product.compare_at_min
    return {
        "id": product.product_id,
        "handle": product.handle,
        "title": product.title,
        "url": product.url,
        "image": {"url": product.image_url, "alt": product.image_alt or product.title}
        if product.image_url
        else None,
        "price": _money(price, product.currency),
        # Only a real sale: a compare-at price above the price.
        "compare_at_price": _money(compare, product.currency)
        if compare is not None and price is not None and compare > price
        else None,
        "available": variant.available if variant else product.available,
        "variant_id": variant.id if variant else None,
        "variant_title": variant.title if variant and variant.title != "Default Title" else None,
    }


def summary(product: StoredProduct) -> dict[str, object]:
    """What a tool result tells the model of a product: prices, options and stock, from the
    catalog (the model is told to quote nothing else)."""
    return {
        "id": product.product_id,
        "handle": product.handle,
        "title": product.title,
        "url": product.url,
        "product_type": product.product_type,
        "vendor": product.vendor,
        "price_min": None if product.price_min is None else f"{product.price_min:.2f}",
        "price_max": None if product.price_max is None else f"{product.price_max:.2f}",
        "currency": product.currency,
        "available": product.available,
        "options": {name: list(values) for name, values in product.options},
        "variants": [
            {
                "id": v.id,
                "title": v.title,
                "options": v.options,
                "price": f"{v.price:.2f}",
                "compare_at_price": None
                if v.compare_at_price is None
                else f"{v.compare_at_price:.2f}",
                "available": v.available,
            }
            for v in product.variants[:30]
        ],
        "description": product.description[:600],
    }
