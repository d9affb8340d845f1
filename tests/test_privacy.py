"""Applying stored webhooks: exactly once across workers, and an uninstall Shopify confirms."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from sqlmodel import col

from app import deliveries, repo
from app.db import Database
from app.models import WebhookEvent, utcnow
from app.shopify import Shopify
from app.state import AppState
from tests.factories import (
    TEST_API_KEY,
    TEST_API_SECRET,
    make_shop,
    new_id,
    server_cipher,
    shop_id_of,
)
from tests.fake_shopify import FakeShopify
from tests.servers import LiveServer


async def _stored(db: Database, topic: str, shop: str, payload: dict[str, object]) -> int:
    async with db.session() as session:
        event = await repo.record_webhook(
            session, webhook_id=new_id(), topic=topic, shop=shop, payload=json.dumps(payload)
        )
    assert event is not None and event.id is not None
    return event.id


@pytest.fixture
async def workers(database_url: str) -> AsyncIterator[list[AppState]]:
    """Three workers' views of the same database, each with its own connections."""
    databases = [Database(database_url, poolclass=NullPool) for _ in range(3)]
    yield [cast(AppState, SimpleNamespace(db=d)) for d in databases]
    for database in databases:
        await database.dispose()


async def test_a_webhook_is_applied_once_however_many_workers_try(
    db: Database, workers: list[AppState]
) -> None:
    shop = await make_shop(db)
    # A data request adds a row each time it is applied: applied twice, the merchant would
    # see the customer's request twice.
    event_id = await _stored(
        db,
        "customers/data_request",
        shop,
        {"shop_domain": shop, "customer": {"id": 4711}, "data_request": {"id": 1}},
    )
    results = await asyncio.gather(*(deliveries.process(state, event_id) for state in workers * 2))
    assert sorted(results) == [False] * 5 + [True]
    async with db.session() as session:
        requests = await repo.list_data_requests(session, shop_id=await shop_id_of(db, shop))
        event = await session.get(WebhookEvent, event_id)
    assert len(requests) == 1
    assert event is not None and event.processed_at is not None and event.attempts == 1


async def test_a_failed_application_waits_before_it_is_retried(db: Database) -> None:
    shop = await make_shop(db)
    event_id = await _stored(db, "customers/redact", shop, {"shop_domain": shop, "customer": {}})
    state = cast(AppState, SimpleNamespace(db=db))
    assert await deliveries.process(state, event_id) is False  # the stored body has no customer
    async with db.session() as session:
        await session.execute(
            sa.update(WebhookEvent)
            .where(col(WebhookEvent.id) == event_id)
            .values(received_at=utcnow() - timedelta(minutes=5))
        )
    async with db.session() as session:
        event = await session.get(WebhookEvent, event_id)
        due_now = await repo.pending_webhooks(
            session, older_than=utcnow() - timedelta(seconds=30), now=utcnow()
        )
        due_later = await repo.pending_webhooks(
            session,
            older_than=utcnow() - timedelta(seconds=30),
            now=utcnow() + timedelta(minutes=2),
        )
    assert event is not None and event.processed_at is None and event.attempts == 1
    assert event_id not in due_now, "backing off"
    assert event_id in due_later


def _state(db: Database, admin_url: str) -> AppState:
    shopify = Shopify(api_key=TEST_API_KEY, api_secret=TEST_API_SECRET, admin_base_url=admin_url)
    return cast(AppState, SimpleNamespace(db=db, shopify=shopify, tokens=server_cipher()))


async def test_an_uninstall_whose_token_still_works_is_stale_and_ignored(
    db: Database, admin: tuple[FakeShopify, LiveServer], fake: FakeShopify
) -> None:
    """A captured app/uninstalled body re-sent after the merchant reinstalled: Shopify still
    accepts the shop's token, so the app is installed, whatever the old body says."""
    shop = await make_shop(db, access_token=fake._grant("placeholder")["access_token"])
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
    assert stored is not None
    token = server_cipher().decrypt(stored.access_token)
    assert token is not None
    fake.tokens[token] = shop
    state = _state(db, admin[1].url)
    event_id = await _stored(db, "app/uninstalled", shop, {"myshopify_domain": shop})
    assert await deliveries.process(state, event_id)
    async with db.session() as session:
        kept = await repo.get_shop(session, domain=shop)
    assert kept is not None and kept.installed and kept.access_token
    assert any(r["path"] == "graphql" and r["shop"] == shop for r in fake.requests)


async def test_an_uninstall_shopify_confirms_drops_the_shop(
    db: Database, admin: tuple[FakeShopify, LiveServer], fake: FakeShopify
) -> None:
    shop = await make_shop(db, access_token="shpat_revoked_by_the_uninstall")
    state = _state(db, admin[1].url)
    event_id = await _stored(db, "app/uninstalled", shop, {"myshopify_domain": shop})
    assert await deliveries.process(state, event_id)
    async with db.session() as session:
        gone = await repo.get_shop(session, domain=shop)
    assert gone is not None and not gone.installed and gone.access_token is None
