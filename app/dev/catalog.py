"""The demo shop's catalog in the shapes Shopify's Admin GraphQL API gives it: product and
variant nodes and the shop's policies, which its fake admin (app/dev/fake_admin.py) answers
the catalog import with, page by page or as a bulk operation's JSONL. The local storefront
is the shop's Online Store, so its URLs are built on the base URL the service runs at, which
is only known at start."""

from __future__ import annotations

from typing import Any

from app.dev.catalog_data import POLICIES, PRODUCTS, DemoProduct

STOREFRONT_PATH = "/storefront"
CURRENCY = "USD"
LANGUAGE = "en"
# Fixed, so that importing again writes the same rows (the catalog keeps the newer of two).
UPDATED_AT = "2026-11-20T15:00:00Z"
# Ids of their own, far from those the tests make up (tests/catalog_data.py), since Shopify's
# product ids are unique across shops and the catalog refuses one held by another shop.
PRODUCT_ID_BASE = 9_100_000_000
VARIANT_ID_BASE = 49_100_000_000_000

Node = dict[str, Any]


def storefront_base(base_url: str) -> str:
    """The demo shop's Online Store: the local storefront under the service's base URL."""
    return base_url.rstrip("/") + STOREFRONT_PATH


def image_path(handle: str) -> str:
    return f"{STOREFRONT_PATH}/images/{handle}.svg"


def product_id(index: int) -> int:
    return PRODUCT_ID_BASE + index + 1


def find(handle: str) -> DemoProduct | None:
    return next((p for p in PRODUCTS if p.handle == handle), None)


def _options(product: DemoProduct) -> list[tuple[str, tuple[str, ...]]]:
    options = [("Size", product.sizes), ("Color", product.colours)]
    named = [(name, values) for name, values in options if values]
    return named or [("Title", ("Default Title",))]


def _combinations(options: list[tuple[str, tuple[str, ...]]]) -> list[list[tuple[str, str]]]:
    combos: list[list[tuple[str, str]]] = [[]]
    for name, values in options:
        combos = [[*combo, (name, value)] for combo in combos for value in values]
    return combos


def _variants(product: DemoProduct, pid: int) -> list[Node]:
    variants = []
    for position, combo in enumerate(_combinations(_options(product)), start=1):
        title = " / ".join(value for _, value in combo)
        sku = "-".join(
            [product.handle[:12].rstrip("-").upper(), *(v[:3].upper() for _, v in combo)]
        )
        variant_id = VARIANT_ID_BASE + pid % 10**6 * 100 + position
        variants.append(
            {
                "id": f"gid://shopify/ProductVariant/{variant_id}",
                "title": title,
                "sku": sku,
                "price": product.price,
                "compareAtPrice": product.compare_at,
                "availableForSale": "*" not in product.sold_out and title not in product.sold_out,
                "selectedOptions": [{"name": n, "value": v} for n, v in combo],
            }
        )
    return variants


def _node(product: DemoProduct, pid: int, base_url: str) -> Node:
    store = storefront_base(base_url)
    listed = product.published and product.status == "ACTIVE"
    return {
        "id": f"gid://shopify/Product/{pid}",
        "handle": product.handle,
        "title": product.title,
        "description": product.description,
        "descriptionHtml": f"<p>{product.description}</p>",
        "vendor": "Demo Shop",
        "productType": product.product_type,
        "tags": list(product.tags),
        "status": product.status,
        # Shopify gives null while a product is not published on the Online Store.
        "onlineStoreUrl": f"{store}/products/{product.handle}" if listed else None,
        "updatedAt": UPDATED_AT,
        "options": [{"name": n, "values": list(v)} for n, v in _options(product)],
        "featuredMedia": {
            "preview": {
                "image": {
                    "url": base_url.rstrip("/") + image_path(product.handle),
                    "altText": product.title,
                }
            }
        },
    }


def demo_products(base_url: str) -> list[tuple[Node, list[Node]]]:
    """Every demo product as (product node, its variants' nodes), drafts and archived too."""
    return [
        (_node(product, product_id(i), base_url), _variants(product, product_id(i)))
        for i, product in enumerate(PRODUCTS)
    ]


_POLICY_KINDS = {
    "REFUND_POLICY": "refund",
    "SHIPPING_POLICY": "shipping",
    "PRIVACY_POLICY": "privacy",
    "TERMS_OF_SERVICE": "terms",
    "CONTACT_INFORMATION": "contact",
}


def policy_kind(policy_type: str) -> str:
    """Our kind of policy (app/models/catalog.py) for Shopify's ShopPolicyType."""
    return _POLICY_KINDS[policy_type]


def policy_slug(kind: str) -> str:
    # Shopify's own paths: /policies/refund-policy, /policies/terms-of-service, ...
    return {"terms": "terms-of-service", "contact": "contact-information"}.get(
        kind, f"{kind}-policy"
    )


def demo_policies(base_url: str) -> list[Node]:
    """The shop's policies as `shop { shopPolicies { type title body url } }` gives them."""
    store = storefront_base(base_url)
    return [
        {
            "type": policy_type,
            "title": title,
            "body": body,
            "url": f"{store}/policies/{policy_slug(policy_kind(policy_type))}",
        }
        for policy_type, title, body in POLICIES
    ]
