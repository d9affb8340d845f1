"""The merchant dashboard in a real browser, logged in through the development login."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from itsdangerous import URLSafeTimedSerializer
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy.pool import NullPool
from sqlmodel import col

from app import repo
from app.db import Database
from app.dev.demo import DEMO_SHOP, ensure_demo_shop
from app.models import Catalog, Shop
from tests.factories import (
    ProxyClient,
    add_messages,
    messages_of,
    new_id,
    server_cipher,
    session_token,
)
from tests.servers import LiveServer
from tests.test_widget import Shopper, run

ROWS = "[data-rows] tr"
SAVE = "[data-settings] button[type=submit]"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def tag() -> str:
    """A word only this test's conversations contain: all tests share the demo shop."""
    return f"t{uuid.uuid4().hex[:10]}"


def seed(
    server: LiveServer,
    *questions: str,
    customer_id: str | None = None,
    end: bool = False,
) -> tuple[str, list[str]]:
    """A shopper's conversation through the signed app proxy: its session and the replies."""
    session_id = new_id()

    async def chat() -> list[str]:
        async with ProxyClient(server.url, DEMO_SHOP, customer_id=customer_id) as client:
            replies = []
            for question in questions:
                turn = await client.send(session_id, question)
                assert turn.last.event == "done"
                replies.append(turn.text)
            if end:
                await client.post("/proxy/sessions/end", {"session_id": session_id})
            return replies

    return session_id, run(chat())


def log_in(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/dev/login")
    page.click("text=Open dashboard")
    expect(page).to_have_url(f"{server.url}/")
    wait_listed(page)


def wait_listed(page: Page) -> None:
    # Filter only once the first page is in: a late first page would overwrite the results.
    expect(page.locator(ROWS).first).to_be_visible()


def search(page: Page, q: str, status: str = "") -> None:
    page.fill("[data-filters] [name=q]", q)
    page.select_option("[data-filters] [name=status]", status)
    page.click("[data-filters] button[type=submit]")


def admin_call(server: LiveServer, method: str, path: str, body: Any = None) -> Any:
    # A development token, as /dev/session-token gives the dashboard: the demo shop has no
    # Shopify access token, so any other token would send the app to Shopify's token exchange.
    headers = {"Authorization": f"Bearer {session_token(DEMO_SHOP, dev=True)}"}

    async def call() -> Any:
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as admin:
            response = await admin.request(method, path, json=body)
            assert response.status_code == 200, response.text
            return response.json()

    return run(call())


def test_the_merchant_logs_in_and_sees_the_conversations(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    word = tag()
    seed(server, f"Do you sell wool socks {word}?", customer_id="4242")
    page = context.new_page()
    assert page.request.get(f"{server.url}/dev/session-token").status == 401

    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/dev/login")
    expect(page.locator("[name=shop]")).to_have_value(DEMO_SHOP)
    page.screenshot(path=str(artifacts_dir / "dashboard-login-1280.png"))
    page.fill("[name=shop]", "not a shop")
    page.click("text=Open dashboard")
    expect(page.locator("[role=alert]")).to_contain_text("Enter a shop domain")
    page.fill("[name=shop]", DEMO_SHOP)
    page.click("text=Open dashboard")

    expect(page).to_have_url(f"{server.url}/")
    expect(page.locator(".topbar__shop")).to_contain_text(DEMO_SHOP)
    expect(page.locator(".tabs__tab--active")).to_have_text("Conversations")
    row = page.locator(ROWS, has_text=word)
    expect(row).to_have_count(1)
    expect(row.locator("td")).to_have_text(
        [re.compile(r"\d"), f"Do you sell wool socks {word}?", "active", "4242", "2"]
    )
    page.screenshot(path=str(artifacts_dir / "dashboard-conversations-1280.png"))

    page.set_viewport_size({"width": 375, "height": 740})
    expect(row).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "dashboard-conversations-375.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "no sideways scroll"
    count = row.locator("td.num")
    count.scroll_into_view_if_needed()  # the table scrolls inside its card
    expect(count).to_be_in_viewport()


def test_search_and_status_filter(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    word = tag()
    seed(server, f"Is the merino sweater itchy? {word}-alpha")
    seed(server, f"Can I change my address? {word}-beta")
    seed(server, f"Thanks, bye {word}-gamma", end=True)
    page = context.new_page()
    log_in(page, server)
    expect(page.locator(ROWS, has_text=word)).to_have_count(3)

    search(page, f"{word}-alpha")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS)).to_contain_text("Is the merino sweater itchy?")

    search(page, word, "ended")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS)).to_contain_text(f"Thanks, bye {word}-gamma")
    expect(page.locator(ROWS).locator(".badge")).to_have_text("ended")

    search(page, word, "active")
    expect(page.locator(ROWS)).to_have_count(2)
    page.screenshot(path=str(artifacts_dir / "dashboard-conversations-filtered-1280.png"))

    search(page, f"{word}-nothing")
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator("[data-empty]")).to_have_text("No conversations match.")


def test_a_conversation_shows_its_transcript(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    word = tag()
    questions = (f"How long does shipping take? {word}", "Do you ship internationally?")
    _, replies = seed(server, *questions, customer_id="5150")
    page = context.new_page()
    log_in(page, server)
    search(page, word)
    expect(page.locator(ROWS)).to_have_count(1)
    page.locator(ROWS).locator(".preview").click()  # the whole row opens it

    expect(page).to_have_url(re.compile(r"/conversations/[0-9a-f-]{36}$"))
    transcript = page.locator("[data-transcript] li")
    expect(transcript).to_have_count(4)
    expect(page.locator("[data-transcript] li.user")).to_have_count(2)
    for item, text in zip(
        transcript.all(), [questions[0], replies[0], questions[1], replies[1]], strict=True
    ):
        expect(item).to_contain_text(text.strip())
    expect(transcript.nth(0).locator("small")).to_contain_text("Shopper")
    expect(transcript.nth(1).locator("small")).to_contain_text("Assistant")
    expect(page.locator("[data-meta]")).to_contain_text("active")
    expect(page.locator("[data-meta]")).to_contain_text("customer 5150")
    page.screenshot(path=str(artifacts_dir / "dashboard-conversation-1280.png"), full_page=True)

    page.click("text=← Conversations")
    expect(page).to_have_url(f"{server.url}/")


def test_a_long_transcript_loads_a_page_at_a_time(
    context: BrowserContext, server: LiveServer, database_url: str
) -> None:
    word = tag()
    session_id, _ = seed(server, f"A long conversation {word}")

    async def lengthen() -> None:
        db = Database(database_url, poolclass=NullPool)
        try:
            await add_messages(db, DEMO_SHOP, session_id, 248)
        finally:
            await db.dispose()

    run(lengthen())
    page = context.new_page()
    log_in(page, server)
    search(page, word)
    expect(page.locator(ROWS)).to_have_count(1)
    page.locator(ROWS).locator("a").click()
    transcript = page.locator("[data-transcript] li")
    expect(transcript).to_have_count(200)
    more = page.locator("[data-more]")
    expect(more).to_be_visible()
    more.click()
    expect(transcript).to_have_count(250)
    expect(more).to_be_hidden()
    expect(transcript.first).to_contain_text(f"A long conversation {word}")
    expect(transcript.last).to_contain_text("message 248 of 248")


def test_export_csv_and_jsonl_hold_the_messages(
    context: BrowserContext, server: LiveServer
) -> None:
    word = tag()
    question = f'=HYPERLINK("x"), "quoted", {word}'
    session_id, replies = seed(server, question, "What is your return policy?")
    page = context.new_page()
    log_in(page, server)
    search(page, word)
    expect(page.locator(ROWS)).to_have_count(1)

    with page.expect_download() as csv_download:
        page.click("[data-export=csv]")
    download = csv_download.value
    assert re.fullmatch(r"conversations-demo-shop-\d{8}-\d{6}\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [r["session_id"] for r in rows] == [session_id] * 4, "only the filtered conversation"
    assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[0]["content"] == "'" + question, "a formula is not run by a spreadsheet"
    assert [r["content"] for r in rows[1:]] == [
        replies[0],
        "What is your return policy?",
        replies[1],
    ]

    with page.expect_download() as jsonl_download:
        page.click("[data-export=jsonl]")
    download = jsonl_download.value
    assert download.suggested_filename.endswith(".jsonl")
    lines = Path(download.path()).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    exported = json.loads(lines[0])
    assert exported["session_id"] == session_id
    assert exported["status"] == "active"
    assert [m["content"] for m in exported["messages"]] == [
        question,
        replies[0],
        "What is your return policy?",
        replies[1],
    ]


def test_delete_asks_first_then_removes_the_conversation(
    context: BrowserContext, server: LiveServer, database_url: str, artifacts_dir: Path
) -> None:
    word = tag()
    session_id, _ = seed(server, f"Please forget me {word}")
    page = context.new_page()
    log_in(page, server)
    search(page, word)
    expect(page.locator(ROWS)).to_have_count(1)
    page.locator(ROWS).locator("a").click()
    expect(page.locator("[data-transcript] li")).to_have_count(2)

    dialog = page.locator("dialog[data-confirm]")
    page.click("[data-delete]")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete this conversation?")
    page.screenshot(path=str(artifacts_dir / "dashboard-delete-confirm-1280.png"))
    dialog.locator("text=Cancel").click()
    expect(dialog).to_be_hidden()
    page.reload()
    expect(page.locator("[data-transcript] li")).to_have_count(2)

    page.click("[data-delete]")
    dialog.locator("[data-confirm-delete]").click()
    expect(page).to_have_url(f"{server.url}/?deleted=1")
    expect(page.locator(".toast")).to_have_text("Conversation deleted")
    wait_listed(page)
    search(page, word)
    expect(page.locator("[data-empty]")).to_be_visible()
    expect(page.locator(ROWS)).to_have_count(0)

    async def stored() -> tuple[object, int]:
        db = Database(database_url, poolclass=NullPool)
        try:
            async with db.session() as session:
                shop = await repo.get_shop(session, domain=DEMO_SHOP)
                assert shop is not None and shop.id is not None
                found = await repo.session_conversation(
                    session, shop_id=shop.id, session_id=session_id
                )
            return found, len(await messages_of(db, DEMO_SHOP, session_id))
        finally:
            await db.dispose()

    assert run(stored()) == (None, 0)


def test_settings_change_what_shoppers_see(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    word = tag()
    greeting = f"Welcome to Demo Shop ({word})! Ask us anything."
    answer = f"Yes, we engrave monograms of up to three letters for free ({word})."
    original = admin_call(server, "GET", "/api/admin/settings")
    try:
        page = context.new_page()
        log_in(page, server)
        page.click("text=Settings")
        expect(page.locator(".faq__row")).to_have_count(len(original["faq"]))
        expect(page.locator("[name=greeting]")).to_have_attribute(
            "placeholder", original["defaults"]["greeting"]
        )

        page.fill("[name=accent_color]", "blue")
        page.click(SAVE)
        expect(page.locator("[data-error]")).to_contain_text("accent_color must look like")

        page.fill("[name=greeting]", greeting)
        page.fill("[name=accent_color]", "#B0306A")
        assert page.input_value("[name=accent_color_picker]") == "#b0306a"
        page.click("[data-add-faq]")
        row = page.locator(".faq__row").last
        expect(row.locator("[name=question]")).to_be_focused()
        row.locator("[name=question]").fill("Do you engrave monograms?")
        row.locator("[name=answer]").fill(answer)
        expect(page.locator("[name=direct_streams] option").first).to_have_text(
            f"The app's default ({original['defaults']['direct_streams']})"
        )
        page.select_option("[name=direct_streams]", "always")
        page.click(SAVE)
        expect(page.locator(".toast")).to_contain_text("Settings saved")
        expect(page.locator("[data-error]")).to_be_hidden()
        page.screenshot(path=str(artifacts_dir / "dashboard-settings-1280.png"), full_page=True)

        page.reload()
        expect(page.locator("[name=greeting]")).to_have_value(greeting)
        expect(page.locator("[name=accent_color]")).to_have_value("#b0306a")
        expect(page.locator(".faq__row")).to_have_count(len(original["faq"]) + 1)
        expect(page.locator("[name=direct_streams]")).to_have_value("always")

        shopper = Shopper(context.new_page(), server).visit()
        widget = shopper.page.locator("chat-widget")
        expect(widget).to_have_attribute("style", re.compile(r"--scw-accent:\s*#b0306a"))
        expect(widget).to_have_attribute("data-direct-mode", "always")
        launcher = shopper.page.locator(".scw__launcher")
        expect(launcher).to_have_css("background-color", "rgb(176, 48, 106)")
        shopper.open()
        expect(shopper.page.locator(".scw__message--greeting .scw__bubble")).to_have_text(greeting)
        shopper.send("Can you engrave monograms on a sweater?")
        shopper.wait_replies(1)
        assert shopper.texts("assistant") == [answer]
        shopper.page.screenshot(path=str(artifacts_dir / "dashboard-storefront-after-1280.png"))
    finally:
        keys = (
            "greeting",
            "accent_color",
            "system_prompt",
            "ai_provider",
            "ai_model",
            "faq",
            "direct_streams",
        )
        admin_call(server, "PUT", "/api/admin/settings", {key: original[key] for key in keys})
    restored = admin_call(server, "GET", "/api/admin/settings")
    assert restored["faq"] == original["faq"] and restored["greeting"] == original["greeting"]


def test_statistics_show_figures_and_a_chart(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    seed(server, f"Where is my parcel? {tag()}")
    page = context.new_page()
    log_in(page, server)
    page.click("text=Statistics")
    expect(page).to_have_url(f"{server.url}/stats")
    expect(page.locator("[data-chart] svg rect")).to_have_count(30)
    figures = admin_call(server, "GET", "/api/admin/stats")
    assert figures["conversations_today"] >= 1
    for name in ("conversations_today", "conversations_total", "messages_total"):
        expect(page.locator(f"[data-figure={name}]")).to_have_text(str(figures[name]))
    rate = round(figures["abandonment_rate"] * 100)
    expect(page.locator("[data-figure=abandonment_rate]")).to_have_text(f"{rate}%")

    today = datetime.now(UTC).date().isoformat()
    last = page.locator("[data-chart] rect").last
    expect(last.locator("title")).to_have_text(
        f"{today}: {figures['per_day'][-1]['conversations']}"
    )
    assert float(last.get_attribute("height") or 0) > 0, "today's bar shows"
    questions = page.locator("[data-questions] li")
    expect(questions).to_have_count(len(figures["top_questions"]))
    for text in questions.all_inner_texts():
        assert re.fullmatch(r".+ \(\d+\)", text), text
    expect(page.locator("[data-no-questions]")).to_be_hidden()
    page.screenshot(path=str(artifacts_dir / "dashboard-stats-1280.png"), full_page=True)


async def test_no_dev_login_in_production(start_server: Callable[..., LiveServer]) -> None:
    secret = "p" * 32
    live = start_server(
        app_env="production",
        shopify_api_key="key-1234567890",
        shopify_api_secret=secret,
        token_encryption_key=Fernet.generate_key().decode(),
    )
    async with httpx.AsyncClient(base_url=live.url) as client:
        for response in (
            await client.get("/dev/login"),
            await client.post("/dev/login", data={"shop": DEMO_SHOP}),
            await client.get("/dev/session-token"),
        ):
            assert response.status_code == 404, response.request
            assert response.json()["error"]["code"] == "not_found"
            assert "set-cookie" not in response.headers

        # Even a dev cookie signed with the real secret is no way in.
        cookie = URLSafeTimedSerializer(secret, salt="dev-merchant").dumps(DEMO_SHOP)
        for path in ("/", f"/?shop={DEMO_SHOP}&embedded=1", "/settings"):
            for headers in ({}, {"Cookie": f"scw_dev_merchant={cookie}"}):
                response = await client.get(path, headers=headers)
                assert response.status_code in (302, 401), (path, headers)
                if response.status_code == 302:
                    assert urlsplit(response.headers["location"]).path == "/auth/session-token"
                assert "data-page" not in response.text, "no dashboard without a session token"


async def test_redirects_are_built_from_the_app_url_not_the_host_header(
    start_server: Callable[..., LiveServer],
) -> None:
    live = start_server(
        app_env="production",
        shopify_api_key="key-1234567890",
        shopify_api_secret="p" * 32,
        token_encryption_key=Fernet.generate_key().decode(),
        shopify_app_url="https://chat.example.com",
    )
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.get(
            f"/settings?shop={DEMO_SHOP}&embedded=1", headers={"Host": "evil.example.net"}
        )
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "chat.example.com",
        "/auth/session-token",
    )


async def test_dev_login_refuses_a_shop_name_longer_than_a_dns_label(server: LiveServer) -> None:
    # Such a shop was logged in, and installed on its first API call, past the columns' lengths.
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/dev/login", data={"shop": "a" * 64 + ".myshopify.com"})
    assert response.status_code == 400
    assert "set-cookie" not in response.headers


async def test_a_conversation_page_needs_a_conversation_id(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.post("/dev/login", data={"shop": DEMO_SHOP})
        good = await client.get(f"/conversations/{new_id()}")
        bad = await client.get("/conversations/%22%3E%3Cscript%3E")
    assert good.status_code == 200
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_conversation_id"


async def test_dev_login_reads_no_body_over_64_kib(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/dev/login", data={"shop": DEMO_SHOP, "x": "y" * 70_000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_the_catalog_card_shows_the_import_its_progress_and_its_failure(
    context: BrowserContext, server: LiveServer, database_url: str, artifacts_dir: Path
) -> None:
    async def set_catalog(**values: Any) -> None:
        database = Database(database_url, poolclass=NullPool)
        try:
            async with database.session() as session:
                shop = await repo.get_shop(session, domain=DEMO_SHOP)
                assert shop is not None and shop.id is not None
                if values:
                    await session.execute(
                        sa.update(Catalog).where(col(Catalog.shop_id) == shop.id).values(**values)
                    )
                else:
                    await repo.drop_catalog(session, shop_id=shop.id)
        finally:
            await database.dispose()

    async def demo_token(present: bool) -> None:
        """The demo shop's token for its fake admin: without it, an import fails."""
        database = Database(database_url, poolclass=NullPool)
        try:
            if present:
                await ensure_demo_shop(database, server_cipher())
            else:
                async with database.session() as session:
                    await session.execute(
                        sa.update(Shop)
                        .where(col(Shop.domain) == DEMO_SHOP)
                        .values(access_token=None)
                    )
        finally:
            await database.dispose()

    page = context.new_page()
    log_in(page, server)
    run(set_catalog())
    run(demo_token(present=False))
    page.goto(f"{server.url}/stats")
    card = page.locator("[data-catalog]")
    expect(card.locator("[data-catalog-count]")).to_have_text("0")
    expect(card.locator("[data-catalog-state]")).to_have_text("Not synced yet.")
    button = card.locator("[data-catalog-sync]")
    expect(button).to_have_text("Sync catalog")

    # Without the demo shop's token the import fails, and says what to do.
    button.click()
    expect(card.locator("[data-catalog-error]")).to_contain_text(
        "The last import failed: The app has no working access to your shop"
    )
    expect(button).to_have_text("Retry")
    expect(button).to_be_enabled()
    card.screenshot(path=str(artifacts_dir / "dashboard-catalog-failed.png"))

    yesterday = datetime.now(UTC) - timedelta(days=1)
    run(
        set_catalog(
            status="running",
            error=None,
            products_done=1234,
            products_total=5000,
            finished_at=yesterday,
            lease_until=datetime.now(UTC) + timedelta(hours=1),  # no worker takes it over
        )
    )
    page.reload()
    expect(card.locator("[data-catalog-state]")).to_contain_text(
        "Importing 1,234 of 5,000 products"
    )
    expect(card.locator("[data-catalog-state]")).to_contain_text("Last synced")
    expect(card.locator("[data-catalog-error]")).to_be_hidden()
    expect(button).to_be_disabled()
    page.screenshot(
        path=str(artifacts_dir / "dashboard-catalog-importing-1280.png"), full_page=True
    )
    run(set_catalog())
    run(demo_token(present=True))
