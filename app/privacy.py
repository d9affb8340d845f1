"""What each webhook topic does: uninstall, and Shopify's privacy topics."""

from __future__ import annotations

import json
import logging
from typing import Any

from app import repo, shopcache
from app.db import Database
from app.models import WebhookEvent

log = logging.getLogger("app.privacy")
TOPICS = ("app/uninstalled", "customers/data_request", "customers/redact", "shop/redact")


def _customer_id(payload: dict[str, Any]) -> str | None:
    customer = payload.get("customer")
    ident = customer.get("id") if isinstance(customer, dict) else None
    return str(ident) if isinstance(ident, int | str) and str(ident).isdigit() else None


async def apply(db: Database, *, topic: str, shop: str, payload: dict[str, Any]) -> None:
    async with db.session() as session:
        if topic == "app/uninstalled":
            await repo.uninstall_shop(session, domain=shop)
            shopcache.forget(shop)
            return
        if topic == "shop/redact":
            await repo.delete_shop(session, domain=shop)
            shopcache.forget(shop)
            return
        installed = await repo.get_shop(session, domain=shop)
        if installed is None or installed.id is None:
            return  # nothing of this shop is stored
        customer = _customer_id(payload)
        if customer is None:
            log.warning("%s for %s names no customer id; nothing to do", topic, shop)
            return
        if topic == "customers/redact":
            count = await repo.redact_customer(session, shop_id=installed.id, customer_id=customer)
            log.info("redacted %d conversations of a customer of %s", count, shop)
        elif topic == "customers/data_request":
            email = (payload.get("customer") or {}).get("email")
            request = payload.get("data_request")
            request_id = request.get("id") if isinstance(request, dict) else None
            await repo.add_data_request(
                session,
                shop_id=installed.id,
                customer_id=customer,
                email=str(email) if email else None,
                request_id=str(request_id) if request_id is not None else None,
            )


async def process(db: Database, event: WebhookEvent) -> bool:
    """Apply one stored webhook; a failure leaves it for the sweeper to retry."""
    assert event.id is not None
    try:
        await apply(
            db, topic=event.topic, shop=event.shop_domain, payload=json.loads(event.payload)
        )
        ok = True
    except Exception:
        log.exception("webhook %s (%s) failed; it will be retried", event.webhook_id, event.topic)
        ok = False
    async with db.session() as session:
        await repo.finish_webhook(session, event_id=event.id, processed=ok)
    return ok
