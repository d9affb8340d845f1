"""The demo catalog and the local storefront a shopper can browse and add to the cart from:
app/dev/ (storefront_routes.py, cart_routes.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from playwright.sync_api import Browser, expect

import app.dev.storefront
from app import repo
from app.catalog.products import from_graphql
from app.catalog.source import SHOP_QUERY
from app.config import Settings
from app.db import Database
from app.dev.catalog import demo_policies, demo_products, storefront_base
from app.dev.demo import DEMO_ACCESS_TOKEN, DEMO_SHOP, demo_admin_urls
from app.dev.fake_admin import DEV_ADMIN_PATH, jsonl_lines
from app.repo.catalog import products as products_table
from app.shopify import Shopify
from app.shopify_admin import ShopifyAdminError, admin_graphql
from tests.conftest import make_settings
from tests.factories import TEST_API_KEY, TEST_API_SECRET
from tests.servers import LiveServer, start_app_server, start_storefront_server

BASE = "http://localhost:8000"  # any app URL: the nodes' ids do not depend on it
HIDDEN = ("lambswool-cardigan", "shetland-crew-sweater", "sample-sale-sweater")


def node_of(handle: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return next((n, v) for n, v in demo_products(BASE) if n["handle"] == handle)


def variant_id(handle: str, title: str) -> int:
    _, variants = node_of(handle)
    gid = next(v["id"] for v in variants if v["title"] == title)
    return int(gid.rsplit("/", 1)[1])


MERINO_M = variant_id("merino-crew-sweater", "M / Navy")
SOLD_OUT = variant_id("chunky-knit-scarf", "Cream")
DRAFT = variant_id("lambswool-cardigan", "M / Oatmeal")


# ---- the demo catalog ------------------------------------------------------------------


def test_demo_catalog_has_every_case_a_shopper_meets() -> None:
    catalog = demo_products(BASE)
    assert len(catalog) >= 30
    assert len({n["productType"] for n, _ in catalog}) >= 6
    statuses = [n["status"] for n, _ in catalog]
    assert "DRAFT" in statuses and "ARCHIVED" in statuses
    assert any(v and not any(x["availableForSale"] for x in v) for _, v in catalog), "sold out"
    assert any(
        x["compareAtPrice"] and Decimal(x["compareAtPrice"]) > Decimal(x["price"])
        for _, v in catalog
        for x in v
    ), "on sale"
    cheap = [n["title"] for n, v in catalog if Decimal(v[0]["price"]) < 30]
    assert {"Merino Hiking Socks", "Ribbed Merino Beanie"} <= set(cheap)
    merino, variants = node_of("merino-crew-sweater")
    assert merino["title"] == "Merino Crew Sweater"
    assert merino["options"][0] == {"name": "Size", "values": ["S", "M", "L", "XL"]}
    assert merino["options"][1]["name"] == "Color" and len(merino["options"][1]["values"]) > 1
    assert {v["price"] for v in variants} == {"89.00"}
    assert any(v["availableForSale"] and v["title"].startswith("M /") for v in variants)
    ids = [n["id"] for n, _ in catalog] + [x["id"] for _, v in catalog for x in v]
    assert len(ids) == len(set(ids))
    for node, variants in catalog:  # every node is one the import's reader takes
        record = from_graphql(node, variants, storefront_url=storefront_base(BASE), currency="USD")
        assert record.image_url == f"{BASE}/storefront/images/{node['handle']}.svg"
        names = [o["name"] for o in node["options"]]
        assert all([o["name"] for o in v["selectedOptions"]] == names for v in variants)
    kinds = {p["type"] for p in demo_policies(BASE)}
    assert len(kinds) == 5 and "REFUND_POLICY" in kinds


def test_the_bulk_file_of_the_demo_catalog_is_a_bulk_operations_file() -> None:
    lines = list(jsonl_lines(demo_products(BASE)))
    seen: set[str] = set()
    variants = 0
    for line in lines:
        assert "\n" not in line
        row = json.loads(line)
        if row["id"].startswith("gid://shopify/Product/"):
            assert "__parentId" not in row and "variants" not in row
            seen.add(row["id"])
        else:
            assert row["__parentId"] in seen, "a variant comes after its product"
            variants += 1
    assert len(seen) == len(demo_products(BASE))
    assert variants == sum(len(v) for _, v in demo_products(BASE))


# ---- the demo catalog arrives through the import -----------------------------------------


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    """The development app at its own URL, as `make dev` runs it: the demo shop's catalog is
    imported at start from the fake admin mounted on it."""
    live = start_storefront_server(make_settings(database_url))
    yield live
    live.stop()


async def _demo_rows(db: Database) -> tuple[int, int, list[Any], Any]:
    async with db.session() as session:
        shop = await repo.get_shop(session, domain=DEMO_SHOP)
        assert shop is not None and shop.id is not None
        total = await session.execute(
            sa.select(sa.func.count()).where(products_table.c.shop_id == shop.id)
        )
        visible = await repo.count_visible(session, shop_id=shop.id)
        policies = await repo.shop_policies(session, shop_id=shop.id)
        catalog = await repo.catalog_of(session, shop_id=shop.id)
        return int(total.scalar_one()), visible, list(policies), catalog


def _check_imported(rows: tuple[int, int, list[Any], Any], url: str, method: str) -> None:
    total, visible, policies, catalog = rows
    assert total == len(demo_products(BASE)) and visible == total - len(HIDDEN)
    assert len(policies) == 5
    assert (catalog.status, catalog.method, catalog.error) == ("finished", method, None)
    assert catalog.products_done == total
    assert (catalog.currency, catalog.storefront_url, catalog.language) == (
        "USD",
        f"{url}/storefront",
        "en",
    )


async def test_the_demo_catalog_is_imported_page_by_page_at_start(
    server: LiveServer, db: Database
) -> None:
    _check_imported(await _demo_rows(db), server.url, "pages")
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/storefront/collections/all")
        policy = await client.get("/storefront/policies/refund-policy")
    cards = re.findall(r'data-product-card="([^"]+)"', page.text)
    assert len(cards) == len(demo_products(BASE)) - len(HIDDEN)
    assert not set(HIDDEN) & set(cards), "drafts, archived and unpublished are not shown"
    async with db.session() as session:
        shop = await repo.get_shop(session, domain=DEMO_SHOP)
        assert shop is not None and shop.id is not None
        kinds = {p.kind for p in await repo.shop_policies(session, shop_id=shop.id)}
    assert kinds == {"refund", "shipping", "privacy", "terms", "contact"}
    refund = next(p for p in demo_policies(BASE) if p["type"] == "REFUND_POLICY")
    assert policy.status_code == 200 and refund["title"] in policy.text


async def test_a_bulk_import_and_a_restart_of_two_workers_give_the_same_catalog(
    server: LiveServer, database_url: str, db: Database
) -> None:
    first = await _demo_rows(db)
    bulk = start_storefront_server(make_settings(database_url, dev_catalog_import="bulk"))
    try:
        _check_imported(await _demo_rows(db), bulk.url, "bulk")
    finally:
        bulk.stop()
    # Two workers starting at once on the same database: one imports, the other finds it busy.
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: start_storefront_server(make_settings(database_url)), "ab"))
    try:
        rows = await _demo_rows(db)
        assert rows[0] == first[0] and rows[1] == first[1]
        assert rows[3].status == "finished" and rows[3].method == "pages"
        assert rows[3].storefront_url in {f"{live.url}/storefront" for live in both}
    finally:
        for live in both:
            live.stop()
    # The module's server imports again, so that the pages below link to it.
    restarted = start_storefront_server(make_settings(database_url))
    restarted.stop()


async def test_only_the_demo_shops_admin_calls_go_to_its_fake_admin(server: LiveServer) -> None:
    shopify = Shopify(
        api_key=TEST_API_KEY,
        api_secret=TEST_API_SECRET,
        admin_base_url="http://127.0.0.1:9",  # every other shop's admin: a closed port
        admin_urls={DEMO_SHOP: server.url + DEV_ADMIN_PATH},
    )
    try:
        data = await admin_graphql(
            shopify, shop=DEMO_SHOP, access_token=DEMO_ACCESS_TOKEN, query=SHOP_QUERY
        )
        assert data["shop"]["currencyCode"] == "USD"
        assert data["productsCount"]["count"] == len(demo_products(BASE))
        with pytest.raises(ShopifyAdminError) as refused:
            await admin_graphql(
                shopify, shop=DEMO_SHOP, access_token="shpat_other", query=SHOP_QUERY, retries=0
            )
        assert refused.value.status == 401
        with pytest.raises(ShopifyAdminError) as elsewhere:
            await admin_graphql(
                shopify,
                shop="other-shop.myshopify.com",
                access_token=DEMO_ACCESS_TOKEN,
                query=SHOP_QUERY,
                retries=0,
            )
        assert elsewhere.value.status == 0, "not the fake: the closed port"
    finally:
        await shopify.aclose()


def test_production_does_not_serve_the_fake_admin(database_url: str) -> None:
    settings = Settings(
        app_env="production",
        shopify_api_key="key-1234567890",
        shopify_api_secret="s" * 32,
        database_url=database_url,
        token_encryption_key=Fernet.generate_key().decode(),
        log_level="warning",
    )
    assert demo_admin_urls(settings) == {}
    live = start_app_server(settings)
    try:
        for path in ("/dev/admin/admin/api/2025-10/graphql.json", "/dev/admin/bulk/1.jsonl"):
            response = httpx.post(
                live.url + path,
                json={"query": "query CatalogShop { shop { currencyCode } }"},
                headers={"X-Shopify-Access-Token": DEMO_ACCESS_TOKEN},
            )
            assert response.status_code == 404, path
    finally:
        live.stop()


# ---- the pages ---------------------------------------------------------------------------


async def test_listing_shows_visible_products_only(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/storefront/collections/all")
    assert page.status_code == 200
    cards = re.findall(r'data-product-card="([^"]+)"', page.text)
    assert len(cards) == len(demo_products(BASE)) - len(HIDDEN)
    assert "merino-crew-sweater" in cards and not set(HIDDEN) & set(cards)
    scarf = page.text.split('data-product-card="chunky-knit-scarf"')[1].split("</li>")[0]
    assert "Sold out" in scarf
    sale = page.text.split('data-product-card="cashmere-v-neck-sweater"')[1].split("</li>")[0]
    assert "Sale" in sale and "<s>$149.00</s>" in sale and "$119.00" in sale
    assert 'src="/storefront/images/merino-crew-sweater.svg"' in page.text
    assert "<chat-widget" in page.text and 'id="cart-icon-bubble"' in page.text
    async with httpx.AsyncClient(base_url=server.url) as client:
        image = await client.get("/storefront/images/merino-crew-sweater.svg")
    assert image.headers["content-type"].startswith("image/svg+xml")
    assert image.text.startswith("<svg") and ">MC</text>" in image.text


@pytest.mark.parametrize("handle", [*HIDDEN, "no-such-product", "x" * 300, "a%00b"])
async def test_product_pages_of_hidden_or_unknown_products_are_404(
    server: LiveServer, handle: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get(f"/storefront/products/{handle}")
    assert page.status_code == 404
    assert "Page not found" in page.text and "<chat-widget" in page.text


async def test_product_page_has_a_variant_picker_and_an_add_to_cart_form(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/storefront/products/merino-crew-sweater")
        sold_out = await client.get("/storefront/products/chunky-knit-scarf")
    assert page.status_code == 200
    assert "<h1>Merino Crew Sweater</h1>" in page.text and "$89.00" in page.text
    assert re.findall(r'name="option-0" value="([^"]+)"', page.text) == ["S", "M", "L", "XL"]
    assert 'action="/cart/add.js"' in page.text and 'name="id" value="4' in page.text
    assert "<chat-widget" in page.text
    assert re.search(r"data-add\s+disabled", sold_out.text) and "Sold out" in sold_out.text


async def test_the_block_sees_product_on_product_pages_only(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = app.dev.storefront._block_source
    probe = (
        '<i data-probe="{% if product %}{{ product.handle }}|{{ product.title }}|'
        '{{ product.id }}{% else %}none{% endif %}"></i>'
    )

    def probed(name: str = "chat-embed.liquid") -> str:
        # The app embed, with what it sees of `product` written out; other blocks as they are.
        return read(name) + (probe if name == "chat-embed.liquid" else "")

    monkeypatch.setattr(app.dev.storefront, "_block_source", probed)
    merino, _ = node_of("merino-crew-sweater")
    merino_id = merino["id"].rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=server.url) as client:
        seen = {
            path: re.search(r'data-probe="([^"]*)"', (await client.get(path)).text).group(1)
            for path in (
                "/storefront/products/merino-crew-sweater",
                "/storefront",
                "/storefront/collections/all",
                "/storefront/cart",
                "/storefront/products/lambswool-cardigan",
            )
        }
    assert seen.pop("/storefront/products/merino-crew-sweater") == (
        f"merino-crew-sweater|Merino Crew Sweater|{merino_id}"
    )
    assert set(seen.values()) == {"none"}, seen


# ---- the cart ----------------------------------------------------------------------------


async def test_cart_add_and_cart_js_answer_as_shopify(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        empty = await client.get("/cart.js")
        assert empty.json()["item_count"] == 0 and empty.json()["items"] == []
        added = await client.post(
            "/cart/add.js",
            json={"items": [{"id": MERINO_M, "quantity": 2}], "sections": "cart-icon-bubble"},
        )
        assert added.status_code == 200, added.text
        line = added.json()["items"][0]
        assert (line["variant_id"], line["quantity"], line["price"]) == (MERINO_M, 2, 8900)
        assert line["title"] == "Merino Crew Sweater - M / Navy"
        assert line["url"] == f"/storefront/products/merino-crew-sweater?variant={MERINO_M}"
        assert line["product_id"] == int(node_of("merino-crew-sweater")[0]["id"].split("/")[-1])
        bubble = added.json()["sections"]["cart-icon-bubble"]
        assert bubble.startswith(
            '<div id="shopify-section-cart-icon-bubble" class="shopify-section">'
        )
        assert '<span aria-hidden="true">2</span>' in bubble
        # A form's single item: Shopify answers with the line itself.
        again = await client.post("/cart/add.js", data={"id": str(MERINO_M), "quantity": "1"})
        assert again.status_code == 200 and again.json()["quantity"] == 3
        cart = (await client.get("/cart.js")).json()
        assert (cart["item_count"], cart["total_price"], cart["currency"]) == (3, 26700, "USD")
        page = await client.get("/storefront/cart")
        assert "Merino Crew Sweater" in page.text and "$267.00" in page.text
        assert '<span aria-hidden="true">3</span>' in page.text, "the header's bubble"
    async with httpx.AsyncClient(base_url=server.url) as other:
        assert (await other.get("/cart.js")).json()["item_count"] == 0, "carts are per browser"


@pytest.mark.parametrize(
    ("items", "status", "description"),
    [
        ([{"id": SOLD_OUT}], 422, "The product 'Chunky Knit Scarf - Cream' is already sold out."),
        ([{"id": 123456789}], 422, "Cannot find variant"),
        ([{"id": DRAFT}], 422, "Cannot find variant"),
        ([{"id": MERINO_M}, {"id": SOLD_OUT}], 422, "The product 'Chunky Knit Scarf - Cream'"),
        ([{"id": MERINO_M, "quantity": 0}], 400, "Required parameter missing or invalid"),
        ([{"id": "１２"}], 400, "Required parameter missing or invalid: id"),
    ],
)
async def test_cart_refusals_in_shopifys_shape(
    server: LiveServer, items: list[dict[str, Any]], status: int, description: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        refused = await client.post("/cart/add.js", json={"items": items})
        assert refused.status_code == status
        body = refused.json()
        assert set(body) == {"status", "message", "description"}
        assert body["description"].startswith(description)
        assert (await client.get("/cart.js")).json()["item_count"] == 0, "nothing was added"


# ---- in a browser ------------------------------------------------------------------------


def test_a_shopper_browses_and_adds_to_the_cart(
    browser: Browser, server: LiveServer, artifacts_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/storefront/collections/all")
        page.wait_for_function(
            "[...document.images].every((image) => image.complete && image.naturalWidth > 0)"
        )
        page.screenshot(path=str(artifacts_dir / "storefront-listing-1280.png"), full_page=True)
        page.click('[data-product-card="merino-crew-sweater"] a')
        expect(page.locator("h1")).to_have_text("Merino Crew Sweater")
        page.click("label:has(input[name=option-0][value=XL])")
        page.click("label:has(input[name=option-1][value=Navy])")
        expect(page.locator("[data-add]")).to_have_text("Sold out")
        page.click("label:has(input[name=option-0][value=M])")
        expect(page.locator("[data-add]")).to_be_enabled()
        page.click("[data-add]")
        expect(page.locator("[data-status]")).to_have_text("Added to your cart.")
        expect(page.locator("#cart-icon-bubble .cart-count-bubble")).to_contain_text("1")
        page.wait_for_function("customElements.get('chat-widget') !== undefined")
        page.screenshot(path=str(artifacts_dir / "storefront-product-1280.png"))
        page.click("#cart-icon-bubble")
        expect(page.locator("[data-line]")).to_have_count(1)
        expect(page.locator("[data-line]")).to_contain_text("M / Navy")
    finally:
        context.close()
