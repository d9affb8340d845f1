"""The catalog's import from Shopify (app/catalog/sync.py), against the fake admin: page by
page and by bulk operation, through throttling and failure, one worker at a time, and put in
place only when it has read everything."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from app import repo
from app.catalog import sync
from app.catalog.products import from_rest
from app.db import Database
from app.models import Catalog, Product, aware, utcnow
from app.shopify import Shopify
from app.state import AppState
from app.sweeper import Sweeper
from tests.catalog_data import graphql_product, next_product_id, rest_product
from tests.conftest import make_settings
from tests.factories import (
    TEST_API_KEY,
    TEST_API_SECRET,
    AdminClient,
    new_shop_domain,
    server_cipher,
    shop_id_of,
)
from tests.fake_catalog import Operation, jsonl_lines
from tests.fake_shopify import FakeShopify
from tests.servers import LiveServer
from tests.test_webhooks import eventually, send_webhook

products_table: sa.Table = Product.__table__  # type: ignore[attr-defined]
catalogs_table: sa.Table = Catalog.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def workers(
    database_url: str, admin: tuple[FakeShopify, LiveServer]
) -> AsyncIterator[list[AppState]]:
    """Two workers of the service: each its own connections, Shopify client and sweeper."""
    states = []
    for _ in range(2):
        db = Database(database_url, poolclass=NullPool)
        states.append(
            cast(
                AppState,
                SimpleNamespace(
                    settings=make_settings(database_url, shopify_admin_base_url=admin[1].url),
                    db=db,
                    shopify=Shopify(
                        api_key=TEST_API_KEY,
                        api_secret=TEST_API_SECRET,
                        admin_base_url=admin[1].url,
                    ),
                    tokens=server_cipher(),
                    sweeper=Sweeper(db=db, abandon_after_minutes=30, interval=60),
                ),
            )
        )
    yield states
    for state in states:
        await state.sweeper.close()
        await state.shopify.aclose()
        await state.db.dispose()


@pytest.fixture
def worker(workers: list[AppState]) -> AppState:
    return workers[0]


async def installed(db: Database, fake: FakeShopify, products: list[Any] | None = None) -> str:
    """A shop installed with a token the fake admin knows, and its catalog there."""
    shop = new_shop_domain()
    grant = fake._grant(shop)
    async with db.session() as session:
        await repo.store_tokens(
            session,
            domain=shop,
            access_token=server_cipher().encrypt(grant["access_token"]) or "",
            refresh_token=server_cipher().encrypt(grant["refresh_token"]),
            access_token_expires_at=utcnow() + timedelta(days=1),
            refresh_token_expires_at=utcnow() + timedelta(days=90),
            scopes="read_products",
        )
    fake.catalogs.shop(shop).products = list(products or [])
    return shop


async def import_now(state: AppState, shop: str, **kwargs: Any) -> str:
    await sync.request_import(state, await shop_id_of(state.db, shop))
    return await sync.run_import(state, shop, **kwargs)


async def catalog(db: Database, shop: str) -> Catalog:
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        found = await repo.catalog_of(session, shop_id=shop_id)
    assert found is not None
    return found


async def visible(db: Database, shop: str) -> dict[int, repo.StoredProduct]:
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        ids = (
            await session.execute(
                sa.select(products_table.c.product_id).where(products_table.c.shop_id == shop_id)
            )
        ).scalars()
        found = await repo.visible_products(session, shop_id=shop_id, product_ids=list(ids))
    return {p.product_id: p for p in found}


def pid(product: tuple[dict[str, Any], list[Any]]) -> int:
    return int(product[0]["id"].rsplit("/", 1)[1])


async def test_a_small_shop_is_imported_page_by_page(worker: AppState, fake: FakeShopify) -> None:
    products = [graphql_product(title=f"Sweater {i}") for i in range(130)]
    shop = await installed(worker.db, fake, products)

    assert await import_now(worker, shop) == "finished"

    shown = await visible(worker.db, shop)
    assert set(shown) == {pid(p) for p in products}
    first = shown[pid(products[0])]
    assert [v.options for v in first.variants] == [{"Size": s} for s in ("S", "M", "L")]
    assert first.currency == "EUR" and first.url == "https://shop.example.com/products/sweater-0"
    names = [name for s, name in fake.catalogs.calls if s == shop]
    assert names.count("CatalogProducts") == 2 and names.count("CatalogVariants") == 2
    assert "CatalogBulk" not in names
    done = await catalog(worker.db, shop)
    assert (done.status, done.method, done.products_done, done.products_total) == (
        "finished",
        "pages",
        130,
        130,
    )
    assert (done.currency, done.storefront_url, done.language) == (
        "EUR",
        "https://shop.example.com",
        "de",
    )
    assert done.finished_at is not None and done.error is None
    async with worker.db.session() as session:
        policies = await repo.shop_policies(session, shop_id=await shop_id_of(worker.db, shop))
    assert [(p.kind, p.body) for p in policies] == [
        ("refund", "Returns within 30 days."),
        ("shipping", "We ship worldwide."),
    ], "HTML made plain text; a policy type that is none of ours left out"


async def test_drafts_and_unpublished_products_are_imported_but_not_shown(
    worker: AppState, fake: FakeShopify
) -> None:
    shown, draft, hidden = (
        graphql_product(title="Shown"),
        graphql_product(title="Draft", status="DRAFT"),
        graphql_product(title="Unpublished", published=False),
    )
    shop = await installed(worker.db, fake, [shown, draft, hidden])
    assert await import_now(worker, shop) == "finished"
    assert set(await visible(worker.db, shop)) == {pid(shown)}
    async with worker.db.session() as session:
        shop_id = await shop_id_of(worker.db, shop)
        assert await repo.count_visible(session, shop_id=shop_id) == 1
        stored = await session.execute(
            sa.select(sa.func.count()).where(products_table.c.shop_id == shop_id)
        )
    assert stored.scalar_one() == 3, "kept, so that a later webhook can be ordered against them"


async def test_a_large_shop_is_imported_by_bulk_operation(
    worker: AppState, fake: FakeShopify
) -> None:
    products = [graphql_product(title=f"Scarf {i}", sizes=("S", "M", "L", "XL")) for i in range(6)]
    shop = await installed(worker.db, fake, products)
    fake.catalogs.bulk_polls = 2
    lines = list(jsonl_lines(products))
    assert '"__parentId"' not in lines[2] and '"__parentId"' in lines[3], (
        "the file has a product's variants after the next product"
    )

    assert await import_now(worker, shop, bulk_above=5) == "finished"

    shown = await visible(worker.db, shop)
    assert set(shown) == {pid(p) for p in products}
    for product in products:
        assert [v.options["Size"] for v in shown[pid(product)].variants] == ["S", "M", "L", "XL"]
    names = [name for s, name in fake.catalogs.calls if s == shop]
    assert names.count("CatalogBulk") == 1 and names.count("CatalogBulkStatus") == 3
    assert "CatalogProducts" not in names
    done = await catalog(worker.db, shop)
    assert (done.method, done.products_done, done.products_total) == ("bulk", 6, 6)
    assert done.bulk_operation_id is None


async def test_throttled_calls_wait_and_the_import_goes_on(
    worker: AppState, fake: FakeShopify
) -> None:
    products = [graphql_product() for _ in range(3)]
    shop = await installed(worker.db, fake, products)
    fake.catalogs.throttle, fake.catalogs.too_many = 2, 2

    assert await import_now(worker, shop) == "finished"

    assert len(await visible(worker.db, shop)) == 3
    assert fake.catalogs.throttle == 0 and fake.catalogs.too_many == 0
    names = [name for s, name in fake.catalogs.calls if s == shop]
    assert names[:5] == ["CatalogShop"] * 5, "the same query asked again after each wait"


async def test_a_failed_import_says_why_and_the_sweeper_retries_it(
    worker: AppState, fake: FakeShopify
) -> None:
    old = graphql_product(title="Old Sweater")
    shop = await installed(worker.db, fake, [old])
    assert await import_now(worker, shop) == "finished"
    fake.catalogs.shop(shop).products = [graphql_product(title="New Sweater")]
    fake.catalogs.fail = "Internal error. Looks like something went wrong on our end."

    assert await import_now(worker, shop) == "failed"

    failed = await catalog(worker.db, shop)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error and "something went wrong" in failed.error
    assert failed.next_attempt_at is not None
    assert aware(failed.next_attempt_at) > utcnow() + timedelta(seconds=30), "backed off"
    assert failed.lease_until is None
    assert set(await visible(worker.db, shop)) == {pid(old)}, "the previous catalog stays"

    sweeper = worker.sweeper
    sweeper.run_import = functools.partial(sync.run_import, worker)
    await sweeper.sweep()
    await sweeper.drain()
    assert (await catalog(worker.db, shop)).attempts == 1, "not retried before its time"
    fake.catalogs.fail = None
    async with worker.db.session() as session:
        await session.execute(
            sa.update(catalogs_table)
            .where(catalogs_table.c.shop_id == failed.shop_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert (await sweeper.sweep())["imports"] >= 1
    await sweeper.drain()

    done = await catalog(worker.db, shop)
    assert (done.status, done.error, done.attempts) == ("finished", None, 0)
    assert [p.title for p in (await visible(worker.db, shop)).values()] == ["New Sweater"]


async def test_a_reimport_replaces_the_catalog_only_when_it_finishes(
    worker: AppState, fake: FakeShopify
) -> None:
    kept, dropped = graphql_product(title="Kept"), graphql_product(title="Dropped")
    shop = await installed(worker.db, fake, [kept, dropped])
    assert await import_now(worker, shop, bulk_above=1) == "finished"
    shop_id = await shop_id_of(worker.db, shop)
    changed = graphql_product(pid(kept), title="Kept renamed by the import")
    added = graphql_product(title="Added")
    fake.catalogs.shop(shop).products = [changed, added]
    fake.catalogs.hold = True

    running = asyncio.create_task(import_now(worker, shop, bulk_above=1))

    async def started() -> bool:
        return (await catalog(worker.db, shop)).bulk_operation_id is not None

    await eventually(started)
    shown = await visible(worker.db, shop)
    assert {p.title for p in shown.values()} == {"Kept", "Dropped"}, "the old catalog, whole"
    # Webhooks meanwhile: one renames a product after Shopify exported it, one creates another.
    newer = rest_product(pid(added), title="Added renamed later", updated_at="2027-01-01T00:00:00Z")
    created = rest_product(next_product_id(), title="Created during the import")
    async with worker.db.session() as session:
        for body in (newer, created):
            record = from_rest(body, storefront_url="https://shop.example.com", currency="EUR")
            await repo.store_product(session, shop_id=shop_id, record=record)
    fake.catalogs.hold = False
    assert await running == "finished"

    titles = {p.title for p in (await visible(worker.db, shop)).values()}
    assert titles == {
        "Kept renamed by the import",
        "Added renamed later",
        "Created during the import",
    }, "the dropped product gone; what webhooks wrote during the import kept"


async def test_two_workers_racing_run_one_import(
    workers: list[AppState], fake: FakeShopify
) -> None:
    products = [graphql_product() for _ in range(4)]
    shop = await installed(workers[0].db, fake, products)
    await sync.request_import(workers[0], await shop_id_of(workers[0].db, shop))

    results = await asyncio.gather(*(sync.run_import(w, shop) for w in workers))

    assert sorted(results) == ["busy", "finished"]
    names = [name for s, name in fake.catalogs.calls if s == shop]
    assert names.count("CatalogShop") == 1
    assert len(await visible(workers[0].db, shop)) == 4
    assert await sync.run_import(workers[1], shop) == "busy", "finished: nothing is due"


async def test_an_import_asked_for_as_a_run_lets_go_runs_again_at_once(
    worker: AppState, fake: FakeShopify, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await installed(worker.db, fake, [graphql_product(title="Before")])
    shop_id = await shop_id_of(worker.db, shop)
    release = repo.release_import_lease
    asked: list[bool] = []

    async def asked_in_the_gap(session: Any, **kwargs: Any) -> bool:
        # The run has written "finished" and still holds the lease: a request now (a
        # product changed in bulk, the merchant pressing "Sync") read nothing of this run.
        if not asked:
            fake.catalogs.shop(shop).products = [graphql_product(title="After")]
            asked.append(await sync.request_import(worker, shop_id))
        return await release(session, **kwargs)

    monkeypatch.setattr(repo, "release_import_lease", asked_in_the_gap)
    assert await import_now(worker, shop) == "finished"
    assert asked == [True], "asked for, not refused as if one were running"

    async def answered() -> bool:
        found = await catalog(worker.db, shop)
        titles = {p.title for p in (await visible(worker.db, shop)).values()}
        return found.status == "finished" and titles == {"After"}

    await eventually(answered)
    names = [name for s, name in fake.catalogs.calls if s == shop]
    assert names.count("CatalogShop") == 2, "run again by the worker, not left to the sweeper"


@pytest.fixture
def app_server(
    start_server: Callable[..., LiveServer], admin: tuple[FakeShopify, LiveServer]
) -> LiveServer:
    return start_server(
        shopify_admin_base_url=admin[1].url,
        scopes="read_products",
        shopify_app_url="https://chat.example.com",
    )


async def _imported(db: Database, shop: str, count: int) -> None:
    async def done() -> bool:
        try:
            shop_id = await shop_id_of(db, shop)
        except AssertionError:
            return False
        async with db.session() as session:
            found = await repo.catalog_of(session, shop_id=shop_id)
            shown = await repo.count_visible(session, shop_id=shop_id)
        return found is not None and found.status == "finished" and shown == count

    await eventually(done, timeout=20)


async def test_installing_imports_the_catalog(
    app_server: LiveServer, admin: tuple[FakeShopify, LiveServer], fake: FakeShopify, db: Database
) -> None:
    from tests.test_auth import _install

    by_oauth = new_shop_domain()
    fake.catalogs.shop(by_oauth).products = [graphql_product() for _ in range(2)]
    finished = await _install(app_server, admin[1].url, by_oauth)
    assert finished.status_code == 302
    await _imported(db, by_oauth, 2)

    by_exchange = new_shop_domain()  # Shopify's managed install: a session token, exchanged
    fake.catalogs.shop(by_exchange).products = [graphql_product() for _ in range(3)]
    async with AdminClient(app_server.url, by_exchange) as merchant:
        response = await merchant.get("/api/admin/catalog")
    assert response.status_code == 200, response.text
    await _imported(db, by_exchange, 3)


async def test_the_catalog_endpoints_show_and_sync_only_the_merchants_own_shop(
    app_server: LiveServer, fake: FakeShopify, db: Database
) -> None:
    mine = await installed(db, fake, [graphql_product() for _ in range(2)])
    theirs = await installed(db, fake, [graphql_product() for _ in range(5)])
    async with httpx.AsyncClient(base_url=app_server.url) as anonymous:
        for method, path in (("GET", "/api/admin/catalog"), ("POST", "/api/admin/catalog/sync")):
            refused = await anonymous.request(method, path)
            assert refused.status_code == 401, "a session token is required"

    async with AdminClient(app_server.url, mine) as merchant:
        before = await merchant.get("/api/admin/catalog")
        assert before.status_code == 200
        assert before.json() == {
            "products": 0,
            "status": "none",
            "method": None,
            "products_done": 0,
            "products_total": None,
            "started_at": None,
            "last_synced_at": None,
            "error": None,
        }
        started = await merchant.http.post("/api/admin/catalog/sync", headers=merchant.headers())
        assert started.status_code == 202, started.text
        assert started.json()["status"] in ("pending", "running", "finished")
        await _imported(db, mine, 2)
        after = (await merchant.get("/api/admin/catalog")).json()
    assert after["products"] == 2 and after["status"] == "finished"
    assert after["last_synced_at"] and after["products_total"] == 2
    assert theirs not in {s for s, _ in fake.catalogs.calls}, "the other shop's catalog not read"
    async with AdminClient(app_server.url, theirs) as other:
        shown = (await other.get("/api/admin/catalog")).json()
    assert (shown["products"], shown["status"]) == (0, "none")


async def test_a_finished_bulk_operation_of_another_shop_changes_nothing(
    app_server: LiveServer, fake: FakeShopify, db: Database
) -> None:
    products = [graphql_product() for _ in range(2)]
    shop = await installed(db, fake, products)
    other = await installed(db, fake)
    mine, foreign = "gid://shopify/BulkOperation/900001", "gid://shopify/BulkOperation/900002"
    fake.catalogs.operations[mine] = Operation(
        shop=shop, lines=list(jsonl_lines(products)), polls=0
    )
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        await repo.request_import(session, shop_id=shop_id, now=utcnow())
        await session.execute(
            sa.update(catalogs_table)
            .where(catalogs_table.c.shop_id == shop_id)
            # Held by a live worker polling its operation, as a running import always is:
            # with no lease the sweeper would take it up as one whose worker died.
            .values(
                status="running",
                method="bulk",
                bulk_operation_id=mine,
                import_id=1,
                lease_until=utcnow() + timedelta(minutes=10),
            )
        )
    body = {
        "admin_graphql_api_id": foreign,
        "completed_at": "2026-12-01T10:00:00-05:00",
        "created_at": "2026-12-01T09:58:00-05:00",
        "error_code": None,
        "status": "completed",
        "type": "query",
    }
    for second, header_shop in enumerate((shop, other)):  # another shop's, under either name
        sent = {**body, "completed_at": f"2026-12-01T10:00:0{second}-05:00"}
        response = await send_webhook(app_server, "bulk_operations/finish", header_shop, sent)
        assert response.json() == {"status": "accepted"}
    await asyncio.sleep(1)
    assert not [c for c in fake.catalogs.calls if c[0] in (shop, other)], "Shopify not asked"
    assert (await catalog(db, shop)).status == "running"

    async with db.session() as session:  # its worker stalled: the right delivery wakes it
        await session.execute(
            sa.update(catalogs_table)
            .where(catalogs_table.c.shop_id == shop_id)
            .values(lease_until=None)
        )
    response = await send_webhook(
        app_server, "bulk_operations/finish", shop, {**body, "admin_graphql_api_id": mine}
    )
    assert response.json() == {"status": "accepted"}
    await _imported(db, shop, 2)
