"""What an import reads from Shopify's Admin GraphQL API: the shop, its products page by page
or through a bulk operation's JSONL file, each call waiting out Shopify's throttling."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.catalog.products import plain_text
from app.shopify import Shopify
from app.shopify_admin import ShopifyAdminError, admin_graphql

PRODUCT_FIELDS = (
    "id handle title description vendor productType tags status onlineStoreUrl updatedAt "
    "options { name values } featuredMedia { preview { image { url altText } } }"
)
VARIANT_FIELDS = "id title sku price compareAtPrice availableForSale selectedOptions { name value }"
SHOP_QUERY = """query CatalogShop {
  shop { currencyCode primaryDomain { url } shopPolicies { type title body url } }
  productsCount { count }
}"""
LOCALES_QUERY = "query CatalogLocales { shopLocales { locale primary } }"
# Pages sized to stay well under the 1,000 points a single query may cost: a product with its
# options and image costs about 5, a variant with its options and product 3.
PRODUCTS_QUERY = f"""query CatalogProducts($after: String) {{
  products(first: 100, after: $after) {{
    pageInfo {{ hasNextPage endCursor }} nodes {{ {PRODUCT_FIELDS} }}
  }}
}}"""
VARIANTS_QUERY = f"""query CatalogVariants($after: String) {{
  productVariants(first: 250, after: $after) {{
    pageInfo {{ hasNextPage endCursor }} nodes {{ {VARIANT_FIELDS} product {{ id }} }}
  }}
}}"""
BULK_QUERY = (
    f"{{ products {{ edges {{ node {{ {PRODUCT_FIELDS} "
    f"variants {{ edges {{ node {{ {VARIANT_FIELDS} }} }} }} }} }} }} }}"
)
BULK_RUN = """mutation CatalogBulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status } userErrors { field message }
  }
}"""
BULK_STATUS = """query CatalogBulkStatus($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode rootObjectCount url } }
}"""
POLICY_KINDS = {
    "REFUND_POLICY": "refund",
    "SHIPPING_POLICY": "shipping",
    "PRIVACY_POLICY": "privacy",
    "TERMS_OF_SERVICE": "terms",
    "CONTACT_INFORMATION": "contact",
}
# Throttled calls are retried this often, each wait bounded: a bucket refills within seconds.
MAX_THROTTLED = 8
MAX_WAIT = 20.0
_GID = re.compile(r"^gid://shopify/(Product|ProductVariant)/([0-9]{1,19})$")
Row = tuple[str, int, dict[str, Any] | str]  # kind, product id, node (or its JSON text)


class ImportFailed(Exception):
    """Shopify answered, but not with the catalog: the text is for the merchant."""


@dataclass(frozen=True)
class ShopFacts:
    currency: str | None
    storefront_url: str | None
    policies: list[tuple[str, str, str, str | None]]
    products: int


def product_id(gid: object) -> int | None:
    match = _GID.fullmatch(gid) if isinstance(gid, str) else None
    return int(match.group(2)) if match and match.group(1) == "Product" else None


class AdminReader:
    """One shop's Admin API, asked with a token fetched per call (a long import outlives an
    expiring token; app/shop_tokens.py refreshes it), waiting while Shopify throttles."""

    def __init__(
        self, shopify: Shopify, shop: str, token: Callable[[], Awaitable[str]], *, secure: bool
    ) -> None:
        self.shopify, self.shop, self.token = shopify, shop, token
        self.secure = secure  # only https result files outside tests and development

    async def call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        for attempt in range(MAX_THROTTLED + 1):
            try:
                return await admin_graphql(
                    self.shopify,
                    shop=self.shop,
                    access_token=await self.token(),
                    query=query,
                    variables=variables,
                    retries=0,
                )
            except ShopifyAdminError as exc:
                passing = exc.throttled or exc.status >= 500
                if not passing or attempt == MAX_THROTTLED:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else 2.0**attempt
                await asyncio.sleep(min(max(wait, 0.05), MAX_WAIT))
        raise AssertionError("unreachable")

    async def shop_facts(self) -> ShopFacts:
        data = await self.call(SHOP_QUERY)
        shop = data.get("shop") or {}
        policies = []
        for policy in shop.get("shopPolicies") or []:
            kind = POLICY_KINDS.get(str(policy.get("type") or ""))
            body = plain_text(str(policy.get("body") or ""), 20_000)
            if kind and body:
                title = str(policy.get("title") or kind.title())[:255]
                policies.append((kind, title, body, policy.get("url")))
        currency = shop.get("currencyCode")
        url = (shop.get("primaryDomain") or {}).get("url")
        return ShopFacts(
            currency=currency if isinstance(currency, str) and len(currency) == 3 else None,
            storefront_url=url if isinstance(url, str) and url.startswith("http") else None,
            policies=policies,
            products=int((data.get("productsCount") or {}).get("count") or 0),
        )

    async def language(self) -> str | None:
        """The shop's primary language, when the app may read it (shopLocales wants the
        read_locales scope); None otherwise: the catalog does without."""
        try:
            data = await self.call(LOCALES_QUERY)
        except ShopifyAdminError:
            return None
        for locale in data.get("shopLocales") or []:
            if locale.get("primary") and isinstance(locale.get("locale"), str):
                return str(locale["locale"]).split("-")[0][:8].lower()
        return None

    async def pages(self, query: str, field: str) -> AsyncIterator[list[dict[str, Any]]]:
        after = None
        while True:
            connection = (await self.call(query, {"after": after})).get(field) or {}
            yield list(connection.get("nodes") or [])
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    async def paged_rows(self) -> AsyncIterator[list[Row]]:
        """Products, then variants (each naming its product): two flat listings, cheaper than
        variants nested in products, and staged by product id the same as a bulk file."""
        async for nodes in self.pages(PRODUCTS_QUERY, "products"):
            heads: list[Row] = [("product", p, n) for n in nodes if (p := product_id(n.get("id")))]
            yield heads
        async for nodes in self.pages(VARIANTS_QUERY, "productVariants"):
            rows: list[Row] = []
            for node in nodes:
                pid = product_id((node.pop("product", None) or {}).get("id"))
                if pid:
                    rows.append(("variant", pid, node))
            yield rows

    async def start_bulk(self) -> str:
        result = (await self.call(BULK_RUN, {"query": BULK_QUERY})).get("bulkOperationRunQuery")
        result = result or {}
        errors = result.get("userErrors") or []
        operation = result.get("bulkOperation") or {}
        if errors or not isinstance(operation.get("id"), str):
            message = errors[0].get("message") if errors else "no bulk operation"
            raise ImportFailed(f"Shopify did not start the export: {message}"[:300])
        return str(operation["id"])

    async def bulk_status(self, operation_id: str) -> dict[str, Any]:
        node = (await self.call(BULK_STATUS, {"id": operation_id})).get("node")
        if not isinstance(node, dict):
            raise ImportFailed("Shopify no longer knows the export it was running.")
        return node

    async def bulk_rows(self, url: str, batch: int) -> AsyncIterator[list[Row]]:
        """The result file, line by line as it arrives (it can be gigabytes): a product's
        variants come on lines of their own, after it, each naming it in __parentId."""
        if self.secure and not url.startswith("https://"):
            raise ImportFailed("Shopify's export is not at an https address.")
        rows: list[Row] = []
        async with self.shopify.http.stream("GET", url) as response:
            if response.status_code != 200:
                raise ImportFailed(
                    f"The export could not be downloaded (HTTP {response.status_code})."
                )
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                # Parsed to learn what the line is; staged as its own text (a variant's
                # __parentId with it, which nothing reads), sparing a dump of every line.
                node = json.loads(line)
                parent = node.get("__parentId")
                if parent is not None:
                    pid = product_id(parent)
                    if pid:
                        rows.append(("variant", pid, line))
                elif pid := product_id(node.get("id")):
                    rows.append(("product", pid, line))
                if len(rows) >= batch:
                    yield rows
                    rows = []
        if rows:
            yield rows


__all__ = ["AdminReader", "ImportFailed", "Row", "ShopFacts", "product_id"]
