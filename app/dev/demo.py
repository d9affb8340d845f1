"""The development demo shop: registered by `make dev` so the offline assistant has real answers."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from app import repo
from app.catalog import sync as catalog_sync
from app.config import Settings
from app.crypto import TokenCipher
from app.db import Database

if TYPE_CHECKING:
    from app.state import AppState

log = logging.getLogger("app")
DEMO_SHOP = "demo-shop.myshopify.com"
# Not a secret: the token the demo shop's fake admin accepts, in development only.
DEMO_ACCESS_TOKEN = "shpat_demo_shop_development_only"
# Seconds the start waits for the demo import before leaving it to the background.
DEMO_IMPORT_WAIT = 10.0
DEMO_SHOP_NAME = "Demo Shop"
DEMO_FAQ = [
    (
        "How long does shipping take?",
        "Orders ship within 1–2 business days. Standard delivery takes 3–5 business days; "
        "express delivery takes 1–2.",
    ),
    (
        "How much does shipping cost?",
        "Shipping is free on orders over $50. Below that, standard shipping is $4.95 and "
        "express is $12.",
    ),
    (
        "What is your return policy?",
        "You can return unworn items within 30 days for a full refund. Start a return from "
        "the link in your order confirmation email.",
    ),
    (
        "Do you ship internationally?",
        "Yes, we ship to over 40 countries. Duties and taxes are calculated at checkout.",
    ),
    (
        "How do I find my size?",
        "Our sizes run true to size. Each product page has a size chart; if you are between "
        "sizes, we suggest the larger one.",
    ),
    (
        "How can I track my order?",
        "You will get a tracking link by email as soon as your order ships. You can also see "
        "it under Orders when you are logged in.",
    ),
]


async def ensure_demo_shop(db: Database, tokens: TokenCipher) -> None:
    """Register the demo shop with its FAQ and the access token its fake admin accepts
    (written again at each start, so that a changed encryption key still reads it)."""
    try:
        async with db.session() as session:
            shop = await repo.install_shop(
                session, domain=DEMO_SHOP, access_token=tokens.encrypt(DEMO_ACCESS_TOKEN)
            )
            assert shop.id is not None
            if not await repo.list_faq(session, shop_id=shop.id):
                await repo.replace_faq(session, shop_id=shop.id, entries=DEMO_FAQ)
    except IntegrityError:
        pass  # another worker starting at the same moment registered it first


def demo_admin_urls(settings: Settings) -> dict[str, str]:
    """Where the demo shop's Admin API calls go: the fake admin mounted on the development
    app itself (app/dev/fake_admin.py); every other shop keeps Shopify's. Empty in production."""
    if not settings.development:
        return {}
    from app.dev.fake_admin import DEV_ADMIN_PATH

    return {DEMO_SHOP: settings.shopify_app_url + DEV_ADMIN_PATH}


async def import_demo_catalog(state: AppState) -> str:
    """Import the demo shop's catalog with the real import (app/catalog/sync.py) from its fake
    admin: page by page, or through a bulk operation with DEV_CATALOG_IMPORT=bulk.

    Run at every start: the import puts the same nodes in place as the same rows, and its
    lease lets one of two workers starting at once run it (the other finds it busy)."""
    async with state.db.session() as session:
        shop = await repo.get_shop(session, domain=DEMO_SHOP)
    if shop is None or shop.id is None:
        return "gone"
    await catalog_sync.request_import(state, shop.id)
    bulk = state.settings.dev_catalog_import == "bulk"
    return await catalog_sync.run_import(
        state, DEMO_SHOP, bulk_above=0 if bulk else catalog_sync.BULK_ABOVE
    )


async def start_demo_import(state: AppState, *, wait: float = DEMO_IMPORT_WAIT) -> None:
    """Start the demo import in the background and wait for it a little: usually it is done
    (a fraction of a second), so the storefront has its products from the first request;
    a slow one goes on without holding up the start."""
    task = state.sweeper.spawn(import_demo_catalog(state))
    done, _ = await asyncio.wait({task}, timeout=wait)
    if not done:
        log.warning("the demo catalog's import goes on in the background")
    elif not task.cancelled() and (failure := task.exception()) is not None:
        log.error("the demo catalog could not be imported", exc_info=failure)
    elif not task.cancelled() and task.result() != "finished":
        log.warning("the demo catalog's import: %s", task.result())
