"""A product read from Shopify's two shapes: what is kept, what a shopper may see, and every
malformed field refused as a ProductShapeError (never another exception)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from app.catalog.products import (
    ProductShapeError,
    deleted_product_id,
    from_graphql,
    from_rest,
    plain_text,
)
from tests.catalog_data import graphql_product, rest_product

STORE = "https://shop.example.com"


def test_a_rest_product_is_kept_as_a_shopper_sees_it() -> None:
    body = rest_product(
        1001, price="79.00", compare_at_price="99.00", sold_out=("S",), handle="merino-crew"
    )
    product = from_rest(body, storefront_url=STORE, currency="EUR")
    assert product.visible and product.available
    assert product.url == "https://shop.example.com/products/merino-crew"
    assert product.description == "Soft merino wool.\nMachine washable."
    assert product.tags == ("wool", "winter")
    assert product.options == (("Size", ("S", "M", "L")),)
    assert [(v.options, v.available) for v in product.variants] == [
        ({"Size": "S"}, False),
        ({"Size": "M"}, True),
        ({"Size": "L"}, True),
    ]
    assert product.price_range == (Decimal("79.00"), Decimal("79.00"))
    assert product.compare_at_range == (Decimal("99.00"), Decimal("99.00"))
    assert product.image_url and product.image_alt == "Merino Crew Sweater, front"
    assert product.row()["currency"] == "EUR"


@pytest.mark.parametrize(
    ("status", "published", "visible"),
    [
        ("active", True, True),
        ("draft", True, False),
        ("archived", True, False),
        ("active", False, False),
    ],
)
def test_only_active_products_published_on_the_online_store_are_visible(
    status: str, published: bool, visible: bool
) -> None:
    body = rest_product(status=status, published=published)
    assert from_rest(body, storefront_url=STORE, currency=None).visible is visible
    node, variants = graphql_product(status=status.upper(), published=published)
    assert from_graphql(node, variants, storefront_url=STORE, currency=None).visible is visible


def test_stock_follows_shopifys_rules() -> None:
    body = rest_product(sizes=("M",), sold_out=("M",))
    assert not from_rest(body, storefront_url=STORE, currency=None).available
    body["variants"][0]["inventory_policy"] = "continue"  # sold when out of stock
    assert from_rest(body, storefront_url=STORE, currency=None).available
    body = rest_product(sizes=("M",), sold_out=("M",))
    body["variants"][0]["inventory_management"] = None  # not tracked
    assert from_rest(body, storefront_url=STORE, currency=None).available


def test_a_graphql_node_gives_the_same_product() -> None:
    node, variants = graphql_product(1002, sold_out=("L",), compare_at_price="120.00")
    product = from_graphql(node, variants, storefront_url=STORE, currency="USD")
    assert product.product_id == 1002 and product.visible
    assert [v.id for v in product.variants] == [10021, 10022, 10023]
    assert [v.available for v in product.variants] == [True, True, False]
    assert product.price_range == (Decimal("89.00"), Decimal("89.00"))
    assert product.image_alt == "Merino Crew Sweater"


def test_description_html_becomes_text_without_scripts() -> None:
    assert plain_text("<h2>Care</h2><ul><li>Cold&nbsp;wash</li><li>Dry flat</li></ul>") == (
        "Care\nCold wash\nDry flat"
    )
    assert plain_text("<p>Hi<script>alert(1)</script> there &amp; more</p>") == "Hi there & more"


def _broken(field: str, value: Any) -> dict[str, Any]:
    body = rest_product(1003)
    target = body
    *path, last = field.split(".")
    for part in path:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return body


HOSTILE = [
    ("id", "٣٤"),  # non-ASCII digits
    ("id", 2**70),  # beyond 64 bits
    ("id", True),
    ("id", None),
    ("id", {"nested": [1]}),
    ("title", ""),
    ("title", 12),
    ("handle", "a b"),
    ("handle", "x" * 300),
    ("handle", None),
    ("status", "published"),
    ("updated_at", "yesterday"),
    ("updated_at", "2026-11-20T10:00:00"),  # no offset
    ("updated_at", 1700000000),
    ("variants", "many"),
    ("variants", [None]),
    ("variants", [{"id": 1}]),  # no price
    ("variants.0.price", "1e400"),
    ("variants.0.price", "-5.00"),
    ("variants.0.price", "١٠.٠٠"),
    ("variants.0.price", [1]),
    ("variants.0.id", "gid://shopify/Order/5"),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE)
def test_every_malformed_field_is_a_shape_error(field: str, value: Any) -> None:
    with pytest.raises(ProductShapeError):
        from_rest(_broken(field, value), storefront_url=STORE, currency=None)


def test_fields_that_are_only_decoration_are_dropped_not_fatal() -> None:
    body = rest_product(1004)
    body.update(tags=[1, {"x": 2}], vendor=["list"], image="not an image", images=None)
    body["options"] = "Size"
    body["title"] = "Sweater\u0000\u202e with controls"
    product = from_rest(body, storefront_url=STORE, currency=None)
    assert product.vendor == "" and product.image_url is None and product.options == ()
    assert product.title == "Sweater with controls"


def test_a_delete_body_is_an_id_and_nothing_else() -> None:
    assert deleted_product_id({"id": 1005}) == 1005
    for body in ({}, {"id": "x"}, rest_product(1005), {"id": 1005, "title": "x"}):
        with pytest.raises(ProductShapeError):
            deleted_product_id(copy.deepcopy(body))
