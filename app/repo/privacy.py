"""Queries of webhooks and privacy: deliveries stored and claimed, OAuth nonces, customers'
data requests and redaction."""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Conversation, DataRequest, OAuthNonce, WebhookEvent, utcnow
from app.repo.common import _rowcount


async def record_webhook(
    session: AsyncSession, *, webhook_id: str, topic: str, shop: str, payload: str
) -> WebhookEvent | None:
    """Store a webhook once; None when its id, or the same body for the same topic, was seen
    before (Shopify's retries keep the id; a captured body re-sent keeps the body)."""
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    event = WebhookEvent(
        webhook_id=webhook_id, topic=topic, shop_domain=shop, payload=payload, body_digest=digest
    )
    session.add(event)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return None
    return event


async def get_webhook(session: AsyncSession, *, event_id: int) -> WebhookEvent | None:
    return await session.get(WebhookEvent, event_id)


async def claim_webhook(session: AsyncSession, *, event_id: int) -> bool:
    """Mark a webhook applied, in the transaction that applies it: the row stays locked until
    that commits, so a second worker waits, then finds it applied and does nothing (on
    SQLite the database's write lock does the same). A rollback leaves it to be retried."""
    result = await session.execute(
        sa.update(WebhookEvent)
        .where(col(WebhookEvent.id) == event_id, col(WebhookEvent.processed_at).is_(None))
        .values(processed_at=utcnow(), attempts=col(WebhookEvent.attempts) + 1)
    )
    return bool(_rowcount(result))


async def webhook_failed(session: AsyncSession, *, event_id: int, retry_at: datetime) -> None:
    await session.execute(
        sa.update(WebhookEvent)
        .where(col(WebhookEvent.id) == event_id, col(WebhookEvent.processed_at).is_(None))
        .values(attempts=col(WebhookEvent.attempts) + 1, next_attempt_at=retry_at)
    )


async def pending_webhooks(
    session: AsyncSession, *, older_than: datetime, now: datetime, limit: int = 50
) -> list[int]:
    """Webhooks received a while ago and still not applied, whose next attempt is due."""
    result = await session.execute(
        sa.select(col(WebhookEvent.id))
        .where(
            col(WebhookEvent.processed_at).is_(None),
            col(WebhookEvent.received_at) < older_than,
            col(WebhookEvent.attempts) < 10,
            sa.or_(
                col(WebhookEvent.next_attempt_at).is_(None),
                col(WebhookEvent.next_attempt_at) <= now,
            ),
        )
        .order_by(col(WebhookEvent.id))
        .limit(limit)
    )
    return [int(ident) for ident in result.scalars() if ident is not None]


async def forget_old_webhooks(session: AsyncSession, *, before: datetime) -> int:
    """Applied webhooks, and their digests, are kept a while to recognise a replay."""
    result = await session.execute(
        sa.delete(WebhookEvent).where(
            col(WebhookEvent.processed_at).is_not(None), col(WebhookEvent.received_at) < before
        )
    )
    return _rowcount(result)


async def use_oauth_nonce(session: AsyncSession, *, nonce: str) -> bool:
    """Record an OAuth state nonce as used; False if it was used before."""
    session.add(OAuthNonce(nonce=nonce))
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return False
    return True


async def forget_old_nonces(session: AsyncSession, *, before: datetime) -> int:
    result = await session.execute(sa.delete(OAuthNonce).where(col(OAuthNonce.used_at) < before))
    return _rowcount(result)


async def add_data_request(
    session: AsyncSession,
    *,
    shop_id: int,
    customer_id: str,
    email: str | None,
    request_id: str | None,
) -> None:
    session.add(
        DataRequest(
            shop_id=shop_id, customer_id=customer_id, customer_email=email, request_id=request_id
        )
    )
    await session.flush()


async def list_data_requests(session: AsyncSession, *, shop_id: int) -> list[DataRequest]:
    result = await session.execute(
        sa.select(DataRequest)
        .where(col(DataRequest.shop_id) == shop_id)
        .order_by(col(DataRequest.id).desc())
    )
    return list(result.scalars())


async def redact_customer(session: AsyncSession, *, shop_id: int, customer_id: str) -> int:
    result = await session.execute(
        sa.delete(Conversation).where(
            col(Conversation.shop_id) == shop_id, col(Conversation.customer_id) == customer_id
        )
    )
    await session.execute(
        sa.delete(DataRequest).where(
            col(DataRequest.shop_id) == shop_id, col(DataRequest.customer_id) == customer_id
        )
    )
    return _rowcount(result)


async def forget_contact_email(session: AsyncSession, *, shop_id: int, email: str) -> int:
    result = await session.execute(
        sa.update(Conversation)
        .where(
            col(Conversation.shop_id) == shop_id,
            sa.func.lower(col(Conversation.contact_email)) == email.strip().lower(),
        )
        .values(contact_email=None)
    )
    return _rowcount(result)


__all__ = [
    "add_data_request",
    "claim_webhook",
    "forget_contact_email",
    "forget_old_nonces",
    "forget_old_webhooks",
    "get_webhook",
    "list_data_requests",
    "pending_webhooks",
    "record_webhook",
    "redact_customer",
    "use_oauth_nonce",
    "webhook_failed",
]
