"""A fake of the part of Shopify's Admin GraphQL API a catalog import reads (app/catalog/source.py):
a shop's facts and policies, its products then productVariants page by page, a bulk operation
polled through node(id:) and its JSONL result file, in Shopify's wire formats.

`make dev` serves it under /dev/admin for the demo shop (`demo_admin`), so that the demo catalog
arrives through the real import; the tests' fake admin (tests/fake_catalog.py) is this class
with its switches (throttling, failures, a held operation) on top."""

from __future__ import annotations

import hmac
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# Where the development app serves it, and the one token it accepts there.
DEV_ADMIN_PATH = "/dev/admin"
OPERATION = re.compile(r"^\s*(?:query|mutation)\s+(Catalog\w+)")
_FIRST = re.compile(r"first:\s*(\d+)")
_BULK_ID = "gid://shopify/BulkOperation/"

Node = dict[str, Any]
Product = tuple[Node, list[Node]]  # a product node and its variants' nodes


@dataclass
class ShopCatalog:
    products: list[Product] = field(default_factory=list)
    currency: str = "USD"
    storefront: str = ""
    locale: str = "en"
    policies: list[Node] = field(default_factory=list)
    count: int | None = None  # productsCount, when not len(products) (the benchmark's file)


@dataclass
class Operation:
    shop: str
    lines: list[str]
    polls: int  # answers of RUNNING left before it completes
    failure: str | None = None  # the errorCode it ends FAILED with


def jsonl_lines(products: list[Product]) -> Iterator[str]:
    """A bulk operation's result: each product on its line, then its variants on lines of
    their own naming it in __parentId. As Shopify allows, a variant comes after its product
    but not always right after it: here the first right after, the others after the next
    product."""
    late: list[str] = []
    for node, variants in products:
        yield json.dumps(node, separators=(",", ":"))
        lines = [
            json.dumps({**v, "__parentId": node["id"]}, separators=(",", ":")) for v in variants
        ]
        yield from lines[:1]
        yield from late
        late = lines[1:]
    yield from late


class FakeAdmin:
    """The catalog queries' answers for the shops it holds, by the query's operation name."""

    def __init__(self, *, base_url: str = "") -> None:
        self.shops: dict[str, ShopCatalog] = {}
        self.operations: dict[str, Operation] = {}
        self._ids = itertools.count(1)
        # Where result files are served, ending in '/': this fake's own address; when unset,
        # the address a GraphQL request came to.
        self.base_url = base_url
        self.bulk_polls = 1  # polls of a new operation that answer RUNNING

    def new_shop(self) -> ShopCatalog:
        return ShopCatalog()

    def shop(self, domain: str) -> ShopCatalog:
        return self.shops.setdefault(domain, self.new_shop())

    def answer(
        self, shop: str, query: str, variables: dict[str, Any], base_url: str
    ) -> Response | None:
        """The answer to a catalog query (None for a query that is not one of them)."""
        match = OPERATION.match(query)
        if match is None:
            return None
        handler = getattr(self, "_" + match.group(1), None)
        if handler is None:
            return JSONResponse({"errors": [{"message": f"unknown operation {match.group(1)}"}]})
        data = handler(self.shop(shop), shop, query, variables, self.base_url or base_url)
        return JSONResponse({"data": data})

    # ---- what a bulk operation is, overridden by the tests' switches and the demo ----------

    def new_operation(self, shop: str, catalog: ShopCatalog) -> str:
        operation_id = f"{_BULK_ID}{next(self._ids)}"
        self.operations[operation_id] = Operation(
            shop=shop, lines=list(jsonl_lines(catalog.products)), polls=self.bulk_polls
        )
        return operation_id

    def operation(self, operation_id: str) -> Operation | None:
        return self.operations.get(operation_id)

    def still_running(self, operation: Operation) -> bool:
        """Whether this poll finds the operation RUNNING (each poll brings it closer)."""
        if operation.polls > 0:
            operation.polls -= 1
            return True
        return False

    def result_url(self, operation_id: str, operation: Operation, base_url: str) -> str | None:
        # Shopify gives no file for an export of nothing.
        number = operation_id.removeprefix(_BULK_ID)
        return f"{base_url}bulk/{number}.jsonl" if operation.lines else None

    # ---- the queries of app/catalog/source.py -------------------------------------------

    def _CatalogShop(self, catalog: ShopCatalog, *_: Any) -> Node:
        return {
            "shop": {
                "currencyCode": catalog.currency,
                "primaryDomain": {"url": catalog.storefront},
                "shopPolicies": catalog.policies,
            },
            "productsCount": {
                "count": len(catalog.products) if catalog.count is None else catalog.count,
                "precision": "EXACT",
            },
        }

    def _CatalogLocales(self, catalog: ShopCatalog, *_: Any) -> Node:
        locales = [{"locale": catalog.locale, "primary": True}]
        if catalog.locale != "en":
            locales.insert(0, {"locale": "en", "primary": False})
        return {"shopLocales": locales}

    @staticmethod
    def _page(items: list[Node], query: str, after: str | None) -> Node:
        found = _FIRST.search(query)
        size = int(found.group(1)) if found else 50
        start = int(after.removeprefix("cursor:")) if after else 0
        nodes = items[start : start + size]
        return {
            "pageInfo": {
                "hasNextPage": start + size < len(items),
                "endCursor": f"cursor:{start + len(nodes)}",
            },
            "nodes": nodes,
        }

    def _CatalogProducts(
        self, catalog: ShopCatalog, _shop: str, query: str, variables: dict[str, Any], _: str
    ) -> Node:
        nodes = [node for node, _variants in catalog.products]
        return {"products": self._page(nodes, query, variables.get("after"))}

    def _CatalogVariants(
        self, catalog: ShopCatalog, _shop: str, query: str, variables: dict[str, Any], _: str
    ) -> Node:
        nodes = [
            {**variant, "product": {"id": node["id"]}}
            for node, variants in catalog.products
            for variant in variants
        ]
        return {"productVariants": self._page(nodes, query, variables.get("after"))}

    def _CatalogBulk(self, catalog: ShopCatalog, shop: str, *_: Any) -> Node:
        return {
            "bulkOperationRunQuery": {
                "bulkOperation": {"id": self.new_operation(shop, catalog), "status": "CREATED"},
                "userErrors": [],
            }
        }

    def _CatalogBulkStatus(
        self, _c: ShopCatalog, shop: str, _q: str, variables: dict[str, Any], base_url: str
    ) -> Node:
        operation_id = str(variables.get("id") or "")
        operation = self.operation(operation_id)
        if operation is None or operation.shop != shop:
            return {"node": None}
        node: Node = {"id": operation_id, "errorCode": None, "url": None}
        roots = sum(1 for line in operation.lines if "__parentId" not in line)
        if self.still_running(operation):
            return {"node": {**node, "status": "RUNNING", "rootObjectCount": str(roots // 2)}}
        if operation.failure:
            return {"node": {**node, "status": "FAILED", "errorCode": operation.failure}}
        url = self.result_url(operation_id, operation, base_url)
        return {"node": {**node, "status": "COMPLETED", "rootObjectCount": str(roots), "url": url}}

    async def result_file(self, request: Request) -> Response:
        operation = self.operation(_BULK_ID + request.path_params["operation"])
        if operation is None:
            return Response(status_code=404)
        return StreamingResponse(
            (line + "\n" for line in operation.lines), media_type="application/jsonl"
        )


class DemoAdmin(FakeAdmin):
    """The demo shop's admin. It keeps nothing between calls, so that a restarted app, or
    another worker behind the same address, answers for an operation this one started: an
    operation's id is the time it started, and it runs for RUNNING_FOR seconds."""

    RUNNING_FOR = 0.5

    def __init__(self, shop: str, catalog: ShopCatalog, *, base_url: str) -> None:
        super().__init__(base_url=base_url)
        self.shops[shop] = catalog
        self.demo_shop = shop

    def new_operation(self, shop: str, catalog: ShopCatalog) -> str:
        return f"{_BULK_ID}{time.time_ns() // 1_000_000}"

    def operation(self, operation_id: str) -> Operation | None:
        number = operation_id.removeprefix(_BULK_ID)
        if not number.isascii() or not number.isdigit() or len(number) > 15:
            return None
        age = time.time() - int(number) / 1000
        catalog = self.shops[self.demo_shop]
        return Operation(
            shop=self.demo_shop,
            lines=list(jsonl_lines(catalog.products)),
            polls=1 if age < self.RUNNING_FOR else 0,
        )


def demo_admin(*, shop: str, token: str, app_url: str) -> Starlette:
    """The fake admin of the demo shop with the demo catalog (app/dev/catalog.py), to be
    mounted at DEV_ADMIN_PATH of the development app at `app_url`. Every call is the demo
    shop's: the app's Shopify client sends only that shop's admin calls here."""
    from app.dev.catalog import (
        CURRENCY,
        LANGUAGE,
        demo_policies,
        demo_products,
        storefront_base,
    )

    catalog = ShopCatalog(
        products=demo_products(app_url),
        currency=CURRENCY,
        storefront=storefront_base(app_url),
        locale=LANGUAGE,
        policies=demo_policies(app_url),
    )
    fake = DemoAdmin(shop, catalog, base_url=f"{app_url.rstrip('/')}{DEV_ADMIN_PATH}/")

    async def graphql(request: Request) -> Response:
        sent = request.headers.get("x-shopify-access-token", "")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            # Shopify's own answer to a wrong token.
            return JSONResponse({"errors": "Invalid API key or access token"}, status_code=401)
        try:
            body = json.loads(await request.body())
            query, variables = str(body["query"]), dict(body.get("variables") or {})
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": "Bad request"}, status_code=400)
        answer = fake.answer(shop, query, variables, str(request.base_url))
        return answer or JSONResponse({"errors": [{"message": "not a catalog query"}]})

    return Starlette(
        routes=[
            Route("/admin/api/{version}/graphql.json", graphql, methods=["POST"]),
            Route("/bulk/{operation}.jsonl", fake.result_file, methods=["GET"]),
        ]
    )
