"""products/create, products/update and products/delete keep the catalog current: applied
from their own bodies, in the order of their updated_at, never for another shop, and what a
shopper could not see stays out of every read."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlmodel import col

from app import repo
from app.db import Database
from app.models import WebhookEvent
from tests.catalog_data import next_product_id, rest_product
from tests.factories import make_shop, shop_id_of
from tests.servers import LiveServer
from tests.test_webhooks import eventually, send_webhook


async def _visible(db: Database, shop: str, product_id: int) -> repo.StoredProduct | None:
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        return await repo.visible_product(session, shop_id=shop_id, product_id=product_id)


async def _applied(db: Database, count: int, *shops: str) -> None:
    """Wait until this many webhooks of these shops have been applied (the work runs after
    the answer)."""

    async def done() -> bool:
        async with db.session() as session:
            applied = await session.execute(
                sa.select(sa.func.count()).where(
                    col(WebhookEvent.processed_at).is_not(None),
                    col(WebhookEvent.shop_domain).in_(shops),
                )
            )
            return int(applied.scalar_one()) >= count

    await eventually(done)


async def test_a_created_product_is_searchable_by_its_handle(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    body = rest_product(title="Alpaca Beanie", price="25.00")
    response = await send_webhook(server, "products/create", shop, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted"}
    await _applied(db, 1, shop)
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        product = await repo.visible_product(session, shop_id=shop_id, handle="alpaca-beanie")
    assert product is not None and product.title == "Alpaca Beanie"
    assert (
        str(product.price_min) == "25.00"
        and product.url == f"https://{shop}/products/alpaca-beanie"
    )


async def test_an_update_older_than_what_is_stored_changes_nothing(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    product_id = next_product_id()
    newer = rest_product(product_id, title="Sweater v2", updated_at="2026-11-20T12:00:00Z")
    older = rest_product(product_id, title="Sweater v1", updated_at="2026-11-20T11:00:00Z")
    assert (await send_webhook(server, "products/update", shop, newer)).status_code == 200
    await _applied(db, 1, shop)
    assert (await send_webhook(server, "products/update", shop, older)).status_code == 200
    await _applied(db, 2, shop)
    product = await _visible(db, shop, product_id)
    assert product is not None and product.title == "Sweater v2"


async def test_a_deleted_product_stays_deleted_whatever_arrives_late(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    product_id = next_product_id()
    await send_webhook(server, "products/create", shop, rest_product(product_id))
    await _applied(db, 1, shop)
    assert await _visible(db, shop, product_id) is not None
    assert (
        await send_webhook(server, "products/delete", shop, {"id": product_id})
    ).status_code == 200
    await _applied(db, 2, shop)
    assert await _visible(db, shop, product_id) is None
    late = rest_product(product_id, title="Late", updated_at="2099-01-01T00:00:00Z")
    await send_webhook(server, "products/update", shop, late)
    await _applied(db, 3, shop)
    assert await _visible(db, shop, product_id) is None


@pytest.mark.parametrize(
    "changes", [{"status": "draft"}, {"status": "archived"}, {"published": False}]
)
async def test_what_a_shopper_cannot_see_is_never_read(
    server: LiveServer, db: Database, changes: dict[str, object]
) -> None:
    shop = await make_shop(db)
    product_id = next_product_id()
    await send_webhook(server, "products/create", shop, rest_product(product_id))
    await _applied(db, 1, shop)
    hidden = rest_product(product_id, updated_at="2026-11-21T00:00:00Z", **changes)  # type: ignore[arg-type]
    await send_webhook(server, "products/update", shop, hidden)
    await _applied(db, 2, shop)
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        assert await repo.visible_product(session, shop_id=shop_id, product_id=product_id) is None
        assert (
            await repo.visible_product(session, shop_id=shop_id, handle="merino-crew-sweater")
            is None
        )
        assert await repo.visible_products(session, shop_id=shop_id, product_ids=[product_id]) == []
        assert await repo.count_visible(session, shop_id=shop_id) == 0


async def test_a_product_of_another_shop_cannot_be_written_into_this_one(
    server: LiveServer, db: Database
) -> None:
    owner, attacker = await make_shop(db), await make_shop(db)
    product_id = next_product_id()
    await send_webhook(server, "products/create", owner, rest_product(product_id, title="Real"))
    await _applied(db, 1, owner)
    # A body for this id, as if for the attacker's shop (the shop is an unsigned header).
    forged = rest_product(product_id, title="Planted", updated_at="2026-12-01T00:00:00Z")
    assert (await send_webhook(server, "products/update", attacker, forged)).status_code == 200
    await send_webhook(server, "products/delete", attacker, {"id": product_id})
    await _applied(db, 3, owner, attacker)
    assert await _visible(db, attacker, product_id) is None
    kept = await _visible(db, owner, product_id)
    assert kept is not None and kept.title == "Real"


async def test_an_update_body_resent_as_a_delete_is_refused(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    body = rest_product()
    await send_webhook(server, "products/create", shop, body)
    await _applied(db, 1, shop)
    response = await send_webhook(server, "products/delete", shop, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_payload"
    assert await _visible(db, shop, body["id"]) is not None


@pytest.mark.parametrize(
    ("body", "header", "code"),
    [
        ({"id": 5}, None, "invalid_payload"),  # not a product for products/update
        (rest_product(title=""), None, "invalid_payload"),
        ({**rest_product(), "id": "٣"}, None, "invalid_payload"),
        (rest_product(), "", "missing_shop"),
        (rest_product(), "evil.example.com", "invalid_shop"),
    ],
)
async def test_malformed_product_webhooks_are_a_clear_4xx(
    server: LiveServer, db: Database, body: dict[str, object], header: str | None, code: str
) -> None:
    shop = await make_shop(db)
    response = await send_webhook(server, "products/update", shop, body, header_shop=header)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


async def test_uninstall_removes_the_catalog(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    product_id = next_product_id()
    await send_webhook(server, "products/create", shop, rest_product(product_id))
    await _applied(db, 1, shop)
    await send_webhook(server, "app/uninstalled", shop, {"id": 1, "myshopify_domain": shop})
    await _applied(db, 2, shop)
    await asyncio.sleep(0)
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        assert (await repo.get_shop(session, domain=shop)).installed is False  # type: ignore[union-attr]
        assert await repo.count_visible(session, shop_id=shop_id) == 0
        assert await repo.visible_product(session, shop_id=shop_id, product_id=product_id) is None
