"""POST /webhooks: verified, stored once, answered at once, applied right after."""

from __future__ import annotations

import json

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import privacy, repo
from app.errors import BadRequest, TooLarge, Unauthorized
from app.merchants import state_of
from app.shopify import ShopifyAuthError, verify_webhook

MAX_WEBHOOK_BYTES = 1024 * 1024


async def receive(request: Request) -> Response:
    state = state_of(request)
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise TooLarge("body_too_large", "The webhook body is over 1 MiB.")
    try:
        webhook = verify_webhook(
            state.shopify, url=str(request.url), headers=request.headers, body=body
        )
    except ShopifyAuthError as exc:
        raise Unauthorized(exc.code, exc.message) from exc
    if not webhook.topic:
        raise BadRequest("missing_topic", "X-Shopify-Topic is missing.")
    if not webhook.webhook_id:
        raise BadRequest("missing_webhook_id", "X-Shopify-Webhook-Id is missing.")
    async with state.db.session() as session:
        event = await repo.record_webhook(
            session,
            webhook_id=webhook.webhook_id,
            topic=webhook.topic,
            shop=webhook.shop,
            payload=json.dumps(webhook.payload),
        )
    if event is None:
        return JSONResponse({"status": "duplicate"})
    if webhook.topic not in privacy.TOPICS:
        async with state.db.session() as session:
            await repo.finish_webhook(session, event_id=event.id or 0, processed=True)
        return JSONResponse({"status": "ignored"})
    # Shopify wants an answer within 5 seconds; the work happens after the response is sent.
    return JSONResponse(
        {"status": "accepted"}, background=BackgroundTask(privacy.process, state.db, event)
    )


routes = [Route("/webhooks", receive, methods=["POST"])]
