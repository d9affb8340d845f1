"""What a model is told besides the merchant's own prompt: how to use the shop's tools, and
which product the shopper is looking at."""

from __future__ import annotations

import json

from app.assistant.cards import summary
from app.repo.catalog import StoredProduct

TOOL_GUIDE = (
    "You can search this shop's products (search_products, get_product) and its policies "
    "and FAQ (search_policies). Use them for any question about products, sizes, stock, "
    "prices, delivery or returns. Quote prices, stock and links only from tool results, never "
    "from memory; the shopper sees the products you found as cards, so do not paste links. "
    "If the tools have no answer, say so."
)


def system_prompt(base: str, *, tools: bool, page_product: StoredProduct | None) -> str:
    parts = [base]
    if tools:
        parts.append(TOOL_GUIDE)
    if page_product is not None:
        parts.append(
            "The shopper is on this product's page; 'this' or 'it' means this product:\n"
            + json.dumps(summary(page_product), ensure_ascii=False)
        )
    return "\n\n".join(parts)
