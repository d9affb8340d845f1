"""The catalog side of the fake Shopify admin: app/dev/fake_admin.py's answers (a shop's facts,
its products page by page, a bulk operation and its JSONL file), with switches that make it
throttle (a THROTTLED error, or HTTP 429) a number of times, fail, or hold an operation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from app.dev.fake_admin import OPERATION, FakeAdmin, Operation, ShopCatalog, jsonl_lines

__all__ = ["FakeCatalogs", "FakeShopCatalog", "Operation", "jsonl_lines", "policy"]


def policy(kind: str, body: str) -> dict[str, Any]:
    title = kind.replace("_", " ").title()
    return {"type": kind, "title": title, "body": body, "url": f"https://shop.example.com/{kind}"}


@dataclass
class FakeShopCatalog(ShopCatalog):
    """A test shop: its own currency and language, and one policy the import must skip."""

    currency: str = "EUR"
    storefront: str = "https://shop.example.com"
    locale: str = "de"
    policies: list[dict[str, Any]] = field(
        default_factory=lambda: [
            policy("REFUND_POLICY", "<p>Returns within <b>30 days</b>.</p>"),
            policy("SHIPPING_POLICY", "<p>We ship worldwide.</p>"),
            policy("LEGAL_NOTICE", "<p>Not one of ours.</p>"),
        ]
    )


THROTTLED = {
    "errors": [
        {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
    ],
    "extensions": {
        "cost": {
            "requestedQueryCost": 752,
            "actualQueryCost": None,
            "throttleStatus": {
                "maximumAvailable": 2000.0,
                "currentlyAvailable": 742,
                "restoreRate": 100.0,
            },
        }
    },
}


class FakeCatalogs(FakeAdmin):
    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.throttle = 0  # the next N catalog calls: a THROTTLED error (HTTP 200)
        self.too_many = 0  # the next N: HTTP 429 with Retry-After
        self.fail: str | None = None  # every catalog call: this error
        self.bulk_polls = 1  # polls that answer RUNNING before COMPLETED
        self.bulk_failure: str | None = None  # the operation ends FAILED with this errorCode
        self.hold = False  # while set, a running operation stays RUNNING
        self.result_path: Path | None = None  # serve this JSONL file as the result instead
        self.calls: list[tuple[str, str]] = []  # (shop, operation name)

    def new_shop(self) -> ShopCatalog:
        return FakeShopCatalog()

    def answer(
        self, shop: str, query: str, variables: dict[str, Any], base_url: str
    ) -> Response | None:
        match = OPERATION.match(query)
        if match is None:
            return None
        self.calls.append((shop, match.group(1)))
        if self.too_many > 0:
            self.too_many -= 1
            return JSONResponse(
                {"errors": "Exceeded 2 calls per second for api client. Reduce request rates."},
                status_code=429,
                headers={"Retry-After": "0.1"},
            )
        if self.throttle > 0:
            self.throttle -= 1
            return JSONResponse(THROTTLED)
        if self.fail is not None:
            return JSONResponse(
                {
                    "errors": [
                        {"message": self.fail, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
                    ]
                }
            )
        return super().answer(shop, query, variables, base_url)

    def new_operation(self, shop: str, catalog: ShopCatalog) -> str:
        operation_id = super().new_operation(shop, catalog)
        self.operations[operation_id].failure = self.bulk_failure
        return operation_id

    def still_running(self, operation: Operation) -> bool:
        return self.hold or super().still_running(operation)

    def result_url(self, operation_id: str, operation: Operation, base_url: str) -> str | None:
        if self.result_path is not None:  # a file of its own, even for an empty operation
            return f"{base_url}bulk/{operation_id.rsplit('/', 1)[1]}.jsonl"
        return super().result_url(operation_id, operation, base_url)

    async def result_file(self, request: Request) -> Response:
        if self.result_path is not None:
            return FileResponse(self.result_path, media_type="application/jsonl")
        return await super().result_file(request)
