"""A product as we keep it, read from either shape Shopify gives: the REST shape of the
products/* webhooks and the Admin GraphQL nodes of an import.

Everything here is input: a webhook's body is signed by Shopify but written by the merchant
(and by apps they run), so every field is checked for type and bounded in length, and a body
that is not a product is a ProductShapeError, never an exception from deep inside.
"""

from __future__ import annotations

from typing import Any

from app.catalog import fields
from app.catalog.fields import (
    MAX_DESCRIPTION,
    MAX_TITLE,
    MAX_VARIANTS,
    ProductShapeError,
    plain_text,
    product_url,
)
from app.models.products import ProductRecord, Variant


def _rest_variant(data: object, option_names: list[str]) -> Variant:
    if not isinstance(data, dict):
        raise ProductShapeError("A product's variants are objects.")
    price = fields.money(data.get("price"))
    if price is None:
        raise ProductShapeError("A variant has a price.")
    options = {}
    for position, name in enumerate(option_names, start=1):
        value = fields.text(data.get(f"option{position}"), 255)
        if value:
            options[name] = value
    # Sold out is what Shopify's storefront says: tracked, none left, and not sold when out.
    tracked = data.get("inventory_management") not in (None, "")
    quantity = data.get("inventory_quantity")
    in_stock = isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0
    available = not tracked or data.get("inventory_policy") == "continue" or in_stock
    return Variant(
        id=fields.shopify_id(data.get("id"), "variant"),
        title=fields.text(data.get("title"), MAX_TITLE) or "Default Title",
        options=options,
        price=price,
        compare_at_price=fields.money(data.get("compare_at_price")),
        available=available,
        sku=fields.text(data.get("sku"), 255) or None,
    )


def from_rest(
    payload: dict[str, Any], *, storefront_url: str, currency: str | None
) -> ProductRecord:
    """A products/create or products/update body (the REST product)."""
    option_names = [name for name, _ in fields.options(payload.get("options"))]
    variants = payload.get("variants")
    if not isinstance(variants, list) or len(variants) > MAX_VARIANTS:
        raise ProductShapeError("A product body lists its variants.")
    image = payload.get("image")
    if not isinstance(image, dict):
        images = payload.get("images")
        image = images[0] if isinstance(images, list) and images else None
    image = image if isinstance(image, dict) else {}
    handle = fields.handle(payload.get("handle"))
    return ProductRecord(
        product_id=fields.shopify_id(payload.get("id"), "product"),
        handle=handle,
        title=fields.text(payload.get("title"), MAX_TITLE, required="title"),
        description=plain_text(fields.text(payload.get("body_html"), 100_000)),
        vendor=fields.text(payload.get("vendor"), 255),
        product_type=fields.text(payload.get("product_type"), 255),
        tags=fields.tags(payload.get("tags")),
        status=fields.status(payload.get("status")),
        # REST's published_at is the Online Store's publication; null means not published.
        published=isinstance(payload.get("published_at"), str),
        updated_at=fields.moment(payload.get("updated_at")),
        options=fields.options(payload.get("options")),
        variants=tuple(_rest_variant(v, option_names) for v in variants),
        image_url=fields.web_url(image.get("src")),
        image_alt=fields.text(image.get("alt"), 512) or None,
        url=product_url(storefront_url, handle),
        currency=currency,
    )


def _graphql_variant(node: object) -> Variant:
    if not isinstance(node, dict):
        raise ProductShapeError("A product's variants are objects.")
    price = fields.money(node.get("price"))
    if price is None:
        raise ProductShapeError("A variant has a price.")
    options = {}
    selected = node.get("selectedOptions")
    for option in selected if isinstance(selected, list) else []:
        if isinstance(option, dict):
            name, value = (
                fields.text(option.get("name"), 255),
                fields.text(option.get("value"), 255),
            )
            if name and value:
                options[name] = value
    return Variant(
        id=fields.shopify_id(node.get("id"), "variant"),
        title=fields.text(node.get("title"), MAX_TITLE) or "Default Title",
        options=options,
        price=price,
        compare_at_price=fields.money(node.get("compareAtPrice")),
        available=node.get("availableForSale") is True,
        sku=fields.text(node.get("sku"), 255) or None,
    )


def graphql_variants(node: dict[str, Any]) -> list[Any]:
    """The variants nested in a paged query's product node (edges or nodes)."""
    connection = node.get("variants")
    if not isinstance(connection, dict):
        return []
    if isinstance(connection.get("nodes"), list):
        return list(connection["nodes"])
    edges = connection.get("edges")
    return [e.get("node") for e in edges if isinstance(e, dict)] if isinstance(edges, list) else []


def from_graphql(
    node: dict[str, Any], variants: list[Any], *, storefront_url: str, currency: str | None
) -> ProductRecord:
    """A product node of the Admin GraphQL API (app/catalog/sync.py's query) and its
    variants' nodes, given apart: a bulk operation's JSONL lists them on lines of their own."""
    if len(variants) > MAX_VARIANTS:
        raise ProductShapeError("A product has at most 2048 variants.")
    media = node.get("featuredMedia")
    preview = media.get("preview") if isinstance(media, dict) else None
    image = preview.get("image") if isinstance(preview, dict) else None
    image = image if isinstance(image, dict) else node.get("featuredImage")
    image = image if isinstance(image, dict) else {}
    handle = fields.handle(node.get("handle"))
    online = fields.web_url(node.get("onlineStoreUrl"))
    return ProductRecord(
        product_id=fields.shopify_id(node.get("id"), "product"),
        handle=handle,
        title=fields.text(node.get("title"), MAX_TITLE, required="title"),
        description=fields.text(node.get("description"), MAX_DESCRIPTION)
        or plain_text(fields.text(node.get("descriptionHtml"), 100_000)),
        vendor=fields.text(node.get("vendor"), 255),
        product_type=fields.text(node.get("productType"), 255),
        tags=fields.tags(node.get("tags")),
        status=fields.status(node.get("status")),
        # onlineStoreUrl is null unless the product is published on the Online Store.
        published=online is not None,
        updated_at=fields.moment(node.get("updatedAt")),
        options=fields.options(node.get("options")),
        variants=tuple(_graphql_variant(v) for v in variants),
        image_url=fields.web_url(image.get("url")),
        image_alt=fields.text(image.get("altText"), 512) or None,
        url=product_url(storefront_url, handle),
        currency=currency,
    )


def deleted_product_id(payload: dict[str, Any]) -> int:
    """A products/delete body: the product's id, and nothing else."""
    if set(payload) != {"id"}:
        raise ProductShapeError("A products/delete body names the product's id and nothing else.")
    return fields.shopify_id(payload.get("id"), "product")


__all__ = [
    "ProductRecord",
    "ProductShapeError",
    "Variant",
    "deleted_product_id",
    "from_graphql",
    "from_rest",
    "plain_text",
    "product_url",
]
