"""A stored webhook delivery, applied by its topic: the privacy topics and uninstall
(app/privacy.py), the product topics (app/catalog/webhooks.py), a finished bulk operation
(app/catalog/sync.py). Called right after the response and again by the sweeper for
deliveries that failed."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from app import privacy, repo
from app.catalog import sync as catalog_sync
from app.catalog import webhooks as product_webhooks
from app.models import utcnow

if TYPE_CHECKING:
    from app.state import AppState

log = logging.getLogger("app.webhooks")
# Topics applied; any other verified topic is stored and marked done.
TOPICS = privacy.TOPICS + product_webhooks.TOPICS + catalog_sync.TOPICS


async def process(state: AppState, event_id: int) -> bool:
    """Apply a stored webhook if nobody has; a failure is left for the sweeper to retry.
    Returns whether this call applied it."""
    async with state.db.session() as session:
        event = await repo.get_webhook(session, event_id=event_id)
    if event is None or event.processed_at is not None:
        return False
    try:
        payload = json.loads(event.payload)
        if event.topic in product_webhooks.TOPICS:
            return await product_webhooks.apply(
                state, event_id, event.topic, event.shop_domain, payload
            )
        if event.topic in catalog_sync.TOPICS:
            return await catalog_sync.bulk_finished(state, event_id, event.shop_domain, payload)
        delivery = privacy.read_delivery(event.topic, payload)
        return await privacy.apply(state, event_id, delivery)
    except Exception:
        log.exception("webhook %s (%s) failed; it will be retried", event.webhook_id, event.topic)
        wait = timedelta(seconds=min(30 * 2**event.attempts, 3600))
        async with state.db.session() as session:
            await repo.webhook_failed(session, event_id=event_id, retry_at=utcnow() + wait)
        return False
