"""The products/create, products/update and products/delete webhooks, applied from their own
bodies (the REST product), with no call to Shopify per delivery.

A product webhook's body does not name its shop: the shop comes from X-Shopify-Shop-Domain,
which is not signed. So a delivery may only change a product of the shop it names when no
other shop holds that product id (Shopify's ids are unique across shops), its body is
deduplicated like any other (the same signed body is applied once, whatever its headers say),
and a products/delete body must be exactly a delete (an update's body re-sent as a delete is
refused, not applied).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app import repo
from app.catalog.products import ProductShapeError, deleted_product_id, from_rest

if TYPE_CHECKING:
    from app.state import AppState

log = logging.getLogger("app.catalog")
TOPICS = ("products/create", "products/update", "products/delete")


def check(topic: str, payload: dict[str, Any]) -> None:
    """Refuse, at receipt, a body that is not a product of its topic (ProductShapeError)."""
    if topic == "products/delete":
        deleted_product_id(payload)
    else:
        from_rest(payload, storefront_url="https://shop.invalid", currency=None)


async def apply(
    state: AppState, event_id: int, topic: str, shop: str, payload: dict[str, Any]
) -> bool:
    """Apply one stored product webhook, claimed in the transaction that applies it."""
    async with state.db.session() as session:
        if not await repo.claim_webhook(session, event_id=event_id):
            return False
        stored = await repo.get_shop(session, domain=shop)
        if stored is None or stored.id is None or not stored.installed:
            return True  # not a shop of ours (any more): nothing to keep current
        shop_id = stored.id
        if topic == "products/delete":
            product_id = deleted_product_id(payload)
        else:
            catalog = await repo.catalog_of(session, shop_id=shop_id)
            record = from_rest(
                payload,
                storefront_url=(catalog.storefront_url if catalog else None) or f"https://{shop}",
                currency=catalog.currency if catalog else None,
            )
            product_id = record.product_id
        if await repo.product_owned_elsewhere(session, shop_id=shop_id, product_id=product_id):
            log.warning("%s for %s names another shop's product: ignored", topic, shop)
            return True
        if topic == "products/delete":
            await repo.delete_product(session, shop_id=shop_id, product_id=product_id)
        elif not await repo.store_product(session, shop_id=shop_id, record=record):
            log.info("%s for %s older than what is stored: ignored", topic, shop)
    return True


__all__ = ["TOPICS", "ProductShapeError", "apply", "check"]
