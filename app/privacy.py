"""What each webhook topic means and does: uninstall, and Shopify's privacy topics.

Only a webhook's body is signed. Its topic, shop and id arrive in headers that anyone who
captured one delivery can change, so a body is accepted for a topic only when it has that
topic's shape, and the shop is always the one the body names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app import repo, shopcache
from app.shop_tokens import installation_revoked
from app.shopify import is_shop_domain

if TYPE_CHECKING:
    from app.state import AppState

log = logging.getLogger("app.privacy")
TOPICS = ("app/uninstalled", "customers/data_request", "customers/redact", "shop/redact")
# Where each topic's body names its shop: app/uninstalled carries the shop resource.
_SHOP_FIELD = {
    "app/uninstalled": "myshopify_domain",
    "customers/data_request": "shop_domain",
    "customers/redact": "shop_domain",
    "shop/redact": "shop_domain",
}


class WebhookShapeError(Exception):
    """A signed body that does not have the shape of the topic it was sent as."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Delivery:
    """What a verified webhook asks for, read from its signed body."""

    topic: str
    shop: str
    customer_id: str | None = None
    customer_email: str | None = None
    request_id: str | None = None


def _text(value: object, limit: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value)
    return text if 0 < len(text) <= limit and text.isascii() and text.isprintable() else None


def read_delivery(topic: str, payload: dict[str, Any]) -> Delivery:
    """The delivery a body of this topic describes; WebhookShapeError if it is not one."""
    field = _SHOP_FIELD[topic]
    shop = payload.get(field)
    if not isinstance(shop, str) or not is_shop_domain(shop.lower()):
        raise WebhookShapeError(
            "invalid_payload", f"A {topic} body names its shop in {field!r}; this one does not."
        )
    shop = shop.lower()
    customer = payload.get("customer")
    if topic in ("app/uninstalled", "shop/redact"):
        if customer is not None:
            raise WebhookShapeError(
                "invalid_payload", f"A {topic} body names no customer; this one does."
            )
        return Delivery(topic=topic, shop=shop)
    if not isinstance(customer, dict):
        raise WebhookShapeError("invalid_payload", f"A {topic} body names its customer.")
    customer_id = _text(customer.get("id"), 64)
    if customer_id is not None and not customer_id.isdigit():
        customer_id = None
    email = customer.get("email")
    # Kept with the data request for the merchant: text a database can store, or nothing.
    email = (
        email if isinstance(email, str) and 0 < len(email) <= 320 and email.isprintable() else None
    )
    if customer_id is None and email is None:
        raise WebhookShapeError(
            "invalid_payload", f"The customer of a {topic} body has neither an id nor an email."
        )
    request = payload.get("data_request")
    request_id = _text(request.get("id"), 64) if isinstance(request, dict) else None
    return Delivery(
        topic=topic,
        shop=shop,
        customer_id=customer_id,
        customer_email=email,
        request_id=request_id,
    )


async def apply(state: AppState, event_id: int, delivery: Delivery) -> bool:
    """Apply one stored delivery, at most once: the event row is claimed in the transaction
    that applies it, so a second worker waits for the first and then finds it done.
    Returns whether this call applied it."""
    if delivery.topic == "app/uninstalled":
        # A signed app/uninstalled body stays valid for ever: one captured and re-sent after
        # a reinstall would uninstall the shop again. Shopify revokes the token on uninstall,
        # so a token that still works means the app is installed and the delivery is stale.
        # (Asked before the transaction: it calls Shopify.)
        revoked = await installation_revoked(state, delivery.shop)
        async with state.db.session() as session:
            if not await repo.claim_webhook(session, event_id=event_id):
                return False
            if revoked is False:
                log.warning(
                    "app/uninstalled for %s, whose token works: stale, ignored", delivery.shop
                )
                return True
            await repo.uninstall_shop(session, domain=delivery.shop)
            shop = await repo.get_shop(session, domain=delivery.shop)
            if shop is not None and shop.id is not None:
                # The catalog is the merchant's data too; a reinstall imports it afresh.
                await repo.drop_catalog(session, shop_id=shop.id)
        shopcache.forget(delivery.shop)
        return True
    async with state.db.session() as session:
        if not await repo.claim_webhook(session, event_id=event_id):
            return False
        shop = await repo.get_shop(session, domain=delivery.shop)
        if shop is None or shop.id is None:
            return True  # nothing of this shop is stored
        if delivery.topic == "shop/redact":
            # Sent 48 hours after an uninstall; a shop that has reinstalled since keeps its
            # new installation (Shopify would not send it for an installed shop).
            if shop.installed:
                log.warning("shop/redact for %s, installed again: ignored", delivery.shop)
                return True
            await repo.delete_shop(session, domain=delivery.shop)
            shopcache.forget(delivery.shop)
            return True
        if delivery.topic == "customers/redact" and delivery.customer_email:
            # An address a shopper left for the team's reply (docs/live.md), in any of the
            # shop's conversations, logged in or not.
            await repo.forget_contact_email(session, shop_id=shop.id, email=delivery.customer_email)
        if delivery.customer_id is None:
            # Conversations are kept under the customer's id only; nothing to match by email.
            log.info("%s for %s names no customer id; nothing stored", delivery.topic, shop.domain)
            return True
        if delivery.topic == "customers/redact":
            count = await repo.redact_customer(
                session, shop_id=shop.id, customer_id=delivery.customer_id
            )
            log.info("redacted %d conversations of a customer of %s", count, shop.domain)
        elif delivery.topic == "customers/data_request":
            await repo.add_data_request(
                session,
                shop_id=shop.id,
                customer_id=delivery.customer_id,
                email=delivery.customer_email,
                request_id=delivery.request_id,
            )
    return True
