"""POST /webhooks: verified, checked against its topic, stored once, answered at once, applied
right after."""

from __future__ import annotations

import re
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import deliveries, privacy, repo
from app.catalog import sync as catalog_sync
from app.catalog import webhooks as product_webhooks
from app.errors import BadRequest, Unauthorized
from app.shopify import ShopifyAuthError, is_shop_domain, verify_webhook
from app.state import state_of
from app.validation import parse_json, read_body

MAX_WEBHOOK_BYTES = 2 * 1024 * 1024
# Topics and ids as Shopify writes them, within their columns' 100 characters.
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]{1,100}$")


def _header(request: Request, name: str, what: str, *, fallback: str = "") -> str:
    value = request.headers.get(name) or (request.headers.get(fallback, "") if fallback else "")
    if not value:
        raise BadRequest(f"missing_{what}", f"{name} is missing.")
    if not _HEADER_VALUE.fullmatch(value):
        raise BadRequest(f"invalid_{what}", f"{name} is not a Shopify {what.replace('_', ' ')}.")
    return value


def _delivery_shop(request: Request, topic: str, payload: dict[str, Any]) -> str:
    """The shop a verified body of this topic is for, once its shape is checked: the body's
    own where it names one (the privacy topics, uninstall), else the header (products, bulk
    operations: their appliers refuse what is not that shop's). "" for other topics."""
    if topic in privacy.TOPICS:
        try:
            shop = privacy.read_delivery(topic, payload).shop
        except privacy.WebhookShapeError as exc:
            raise BadRequest(exc.code, exc.message) from exc
        header_shop = request.headers.get("x-shopify-shop-domain", "").lower()
        if header_shop and header_shop != shop:
            raise Unauthorized("invalid_shop", "The webhook's shop header is not its body's shop.")
        return shop
    if topic not in product_webhooks.TOPICS and topic not in catalog_sync.TOPICS:
        return ""
    shop = request.headers.get("x-shopify-shop-domain", "").lower()
    if not shop:
        raise BadRequest("missing_shop", "X-Shopify-Shop-Domain is missing.")
    if not is_shop_domain(shop):
        raise BadRequest("invalid_shop", "X-Shopify-Shop-Domain is not a myshopify.com domain.")
    if topic in catalog_sync.TOPICS:
        if not isinstance(payload.get("admin_graphql_api_id"), str):
            raise BadRequest("invalid_payload", f"A {topic} body names its operation.")
        return shop
    try:
        product_webhooks.check(topic, payload)
    except product_webhooks.ProductShapeError as exc:
        raise BadRequest("invalid_payload", f"A {topic} body: {exc}") from exc
    return shop


async def receive(request: Request) -> Response:
    state = state_of(request)
    # Refused from Content-Length when it says too much, and read no further than the cap.
    body = await read_body(request, limit=MAX_WEBHOOK_BYTES)
    # Parsed before the signature is checked: shopifyapp parses the body again to redact it
    # for a log, and fails (a 500) on nesting too deep or a number too long for Python.
    try:
        payload = parse_json(body)
    except BadRequest as exc:
        raise BadRequest("invalid_payload", "The webhook body is not a JSON object.") from exc
    try:
        text = verify_webhook(
            state.shopify,
            url=f"{state.settings.shopify_app_url}/webhooks",
            headers=request.headers,
            body=body,
        )
    except ShopifyAuthError as exc:
        raise Unauthorized(exc.code, exc.message) from exc
    topic = _header(request, "X-Shopify-Topic", "topic")
    # Newer deliveries name it X-Shopify-Event-Id as well; either identifies the delivery.
    webhook_id = _header(
        request, "X-Shopify-Webhook-Id", "webhook_id", fallback="X-Shopify-Event-Id"
    )
    if not isinstance(payload, dict):
        raise BadRequest("invalid_payload", "The webhook body is not a JSON object.")
    shop = _delivery_shop(request, topic, payload)
    async with state.db.session() as session:
        event = await repo.record_webhook(
            session, webhook_id=webhook_id, topic=topic, shop=shop, payload=text
        )
    if event is None or event.id is None:
        return JSONResponse({"status": "duplicate"})
    if topic not in deliveries.TOPICS:
        async with state.db.session() as session:
            await repo.claim_webhook(session, event_id=event.id)
        return JSONResponse({"status": "ignored"})
    # Shopify wants an answer within 5 seconds; the work happens after the response is sent.
    return JSONResponse(
        {"status": "accepted"}, background=BackgroundTask(deliveries.process, state, event.id)
    )


routes = [Route("/webhooks", receive, methods=["POST"])]
