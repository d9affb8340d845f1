"""Products in the shapes Shopify sends them: the REST product of the products/* webhooks and
the Admin GraphQL nodes of an import."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(7_000_000_000_001)


def next_product_id() -> int:
    return next(_ids)


def rest_product(
    product_id: int | None = None,
    *,
    title: str = "Merino Crew Sweater",
    handle: str | None = None,
    status: str = "active",
    published: bool = True,
    updated_at: str = "2026-11-20T10:00:00-05:00",
    sizes: tuple[str, ...] = ("S", "M", "L"),
    price: str = "89.00",
    compare_at_price: str | None = None,
    sold_out: tuple[str, ...] = (),
    product_type: str = "Sweaters",
    tags: str = "wool, winter",
    body_html: str = "<p>Soft <strong>merino</strong> wool.</p><p>Machine washable.</p>",
) -> dict[str, Any]:
    """A products/create or products/update body, as Shopify's REST Admin API writes it."""
    product_id = product_id or next_product_id()
    return {
        "id": product_id,
        "title": title,
        "body_html": body_html,
        "vendor": "Test Knits",
        "product_type": product_type,
        "created_at": "2026-11-01T09:00:00-05:00",
        "handle": handle or title.lower().replace(" ", "-"),
        "updated_at": updated_at,
        "published_at": "2026-11-01T09:00:00-05:00" if published else None,
        "template_suffix": None,
        "published_scope": "web",
        "tags": tags,
        "status": status,
        "admin_graphql_api_id": f"gid://shopify/Product/{product_id}",
        "variants": [
            {
                "id": product_id * 10 + i,
                "product_id": product_id,
                "title": size,
                "price": price,
                "sku": f"SKU-{product_id}-{size}",
                "position": i,
                "inventory_policy": "deny",
                "compare_at_price": compare_at_price,
                "option1": size,
                "option2": None,
                "option3": None,
                "inventory_management": "shopify",
                "inventory_quantity": 0 if size in sold_out else 5,
                "admin_graphql_api_id": f"gid://shopify/ProductVariant/{product_id * 10 + i}",
            }
            for i, size in enumerate(sizes, start=1)
        ],
        "options": [
            {
                "id": 1,
                "product_id": product_id,
                "name": "Size",
                "position": 1,
                "values": list(sizes),
            }
        ],
        "images": [
            {
                "id": 1,
                "alt": f"{title}, front",
                "src": f"https://cdn.shopify.com/s/files/{product_id}.jpg",
            }
        ],
        "image": {
            "id": 1,
            "alt": f"{title}, front",
            "src": f"https://cdn.shopify.com/s/files/{product_id}.jpg",
        },
    }


def graphql_product(
    product_id: int | None = None,
    *,
    title: str = "Merino Crew Sweater",
    handle: str | None = None,
    status: str = "ACTIVE",
    published: bool = True,
    updated_at: str = "2026-11-20T15:00:00Z",
    sizes: tuple[str, ...] = ("S", "M", "L"),
    price: str = "89.0",
    compare_at_price: str | None = None,
    sold_out: tuple[str, ...] = (),
    storefront: str = "https://shop.example.com",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A product node of the Admin GraphQL API and its variants' nodes."""
    product_id = product_id or next_product_id()
    handle = handle or title.lower().replace(" ", "-")
    node = {
        "id": f"gid://shopify/Product/{product_id}",
        "handle": handle,
        "title": title,
        "description": "Soft merino wool. Machine washable.",
        "vendor": "Test Knits",
        "productType": "Sweaters",
        "tags": ["wool", "winter"],
        "status": status,
        "onlineStoreUrl": f"{storefront}/products/{handle}" if published else None,
        "updatedAt": updated_at,
        "options": [{"name": "Size", "values": list(sizes)}],
        "featuredMedia": {
            "preview": {
                "image": {"url": f"https://cdn.shopify.com/{product_id}.jpg", "altText": title}
            }
        },
    }
    variants = [
        {
            "id": f"gid://shopify/ProductVariant/{product_id * 10 + i}",
            "title": size,
            "sku": f"SKU-{product_id}-{size}",
            "price": price,
            "compareAtPrice": compare_at_price,
            "availableForSale": size not in sold_out,
            "selectedOptions": [{"name": "Size", "value": size}],
        }
        for i, size in enumerate(sizes, start=1)
    ]
    return node, variants
