"""The development demo shop: registered by `make dev` so the offline assistant has real answers."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from app import repo
from app.db import Database

DEMO_SHOP = "demo-shop.myshopify.com"
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


async def ensure_demo_shop(db: Database) -> None:
    try:
        async with db.session() as session:
            shop = await repo.install_shop(session, domain=DEMO_SHOP)
            assert shop.id is not None
            if not await repo.list_faq(session, shop_id=shop.id):
                await repo.replace_faq(session, shop_id=shop.id, entries=DEMO_FAQ)
    except IntegrityError:
        pass  # another worker starting at the same moment registered it first
