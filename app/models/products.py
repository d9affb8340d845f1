"""A product as we keep it, whichever shape Shopify sent it in (app/catalog/products.py reads
both): the record an import or a webhook stores, and its variants."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Variant:
    id: int
    title: str
    options: dict[str, str]
    price: Decimal
    compare_at_price: Decimal | None
    available: bool
    sku: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "options": self.options,
            "price": str(self.price),
            "compare_at_price": None
            if self.compare_at_price is None
            else str(self.compare_at_price),
            "available": self.available,
            "sku": self.sku,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variant:
        compare = data.get("compare_at_price")
        return cls(
            id=int(data["id"]),
            title=str(data["title"]),
            options={str(k): str(v) for k, v in dict(data.get("options") or {}).items()},
            price=Decimal(str(data["price"])),
            compare_at_price=None if compare is None else Decimal(str(compare)),
            available=bool(data["available"]),
            sku=data.get("sku"),
        )


@dataclass(frozen=True)
class ProductRecord:
    """A product of one shop, as stored and searched. Only `visible` ones reach a shopper."""

    product_id: int
    handle: str
    title: str
    description: str
    vendor: str
    product_type: str
    tags: tuple[str, ...]
    status: str  # active, draft, archived
    published: bool  # on the Online Store
    updated_at: datetime
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    variants: tuple[Variant, ...] = ()
    image_url: str | None = None
    image_alt: str | None = None
    url: str | None = None
    currency: str | None = None

    @property
    def visible(self) -> bool:
        return self.status == "active" and self.published

    @property
    def available(self) -> bool:
        return any(variant.available for variant in self.variants)

    def _prices(self, compare: bool) -> list[Decimal]:
        if compare:
            return [v.compare_at_price for v in self.variants if v.compare_at_price is not None]
        return [v.price for v in self.variants]

    @property
    def price_range(self) -> tuple[Decimal | None, Decimal | None]:
        prices = self._prices(False)
        return (min(prices), max(prices)) if prices else (None, None)

    @property
    def compare_at_range(self) -> tuple[Decimal | None, Decimal | None]:
        prices = self._prices(True)
        return (min(prices), max(prices)) if prices else (None, None)

    def row(self) -> dict[str, object]:
        """The products table's columns (shop_id and import_id aside)."""
        low, high = self.price_range
        compare_low, compare_high = self.compare_at_range
        return {
            "product_id": self.product_id,
            "handle": self.handle,
            "title": self.title,
            "description": self.description,
            "vendor": self.vendor,
            "product_type": self.product_type,
            "tags": json.dumps(list(self.tags)),
            "status": self.status,
            "published": self.published,
            "visible": self.visible,
            "available": self.available,
            "price_min": low,
            "price_max": high,
            "compare_at_min": compare_low,
            "compare_at_max": compare_high,
            "currency": self.currency,
            "image_url": self.image_url,
            "image_alt": self.image_alt,
            "url": self.url,
            "options": json.dumps([{"name": n, "values": list(v)} for n, v in self.options]),
            "variants": json.dumps([variant.as_json() for variant in self.variants]),
            "shopify_updated_at": self.updated_at,
        }


__all__ = ["ProductRecord", "Variant"]
