"""POST /webhooks: verified, checked against its topic, stored once, answered at once, applied
right after."""

from __future__ import annotations

import re

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import privacy, repo
from app.errors import BadRequest, Unauthorized
from app.merchants import state_of
from app.shopify import ShopifyAuthError, verify_webhook
from app.validation import parse_json, read_body

MAX_WEBHOOK_BYTES = 2 * 1024 * 1024
# Topics and ids as Shopify writes them, within their columns' 100 characters.
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]{1,100}$")


def _header(request: Request, name: str, what: str) -> str:
    value = request.headers.get(name, "")
    if not value:
        raise BadRequest(f"missing_{what}", f"{name} is missing.")
    if not _HEADER_VALUE.fullmatch(value):
        raise BadRequest(f"invalid_{what}", f"{name} is not a Shopify {what.replace('_', ' ')}.")
    return value


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
    webhook_id = request.headers.get("x-shopify-webhook-id") or request.headers.get(
        "x-shopify-event-id", ""
    )
    if not webhook_id:
        raise BadRequest("missing_webhook_id", "X-Shopify-Webhook-Id is missing.")
    if not _HEADER_VALUE.fullmatch(webhook_id):
        raise BadRequest("invalid_webhook_id", "X-Shopify-Webhook-Id is not a Shopify id.")
    if not isinstance(payload, dict):
        raise BadRequest("invalid_payload", "The webhook body is not a JSON object.")
    shop = ""
    if topic in privacy.TOPICS:
        try:
            shop = privacy.read_delivery(topic, payload).shop
        except privacy.WebhookShapeError as exc:
            raise BadRequest(exc.code, exc.message) from exc
        header_shop = request.headers.get("x-shopify-shop-domain", "").lower()
        if header_shop and header_shop != shop:
            raise Unauthorized("invalid_shop", "The webhook's shop header is not its body's shop.")
    async with state.db.session() as session:
        event = await repo.record_webhook(
            session, webhook_id=webhook_id, topic=topic, shop=shop, payload=text
        )
    if event is None or event.id is None:
        return JSONResponse({"status": "duplicate"})
    if topic not in privacy.TOPICS:
        async with state.db.session() as session:
            await repo.claim_webhook(session, event_id=event.id)
        return JSONResponse({"status": "ignored"})
    # Shopify wants an answer within 5 seconds; the work happens after the response is sent.
    return JSONResponse(
        {"status": "accepted"}, background=BackgroundTask(privacy.process, state, event.id)
    )


routes = [Route("/webhooks", receive, methods=["POST"])]
