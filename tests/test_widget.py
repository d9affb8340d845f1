"""The storefront widget in a real browser, against the local storefront and the offline AI."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from app import repo, shopcache
from app.db import Database
from app.dev.demo import DEMO_SHOP
from app.main import create_app
from app.models import Message
from tests.conftest import make_settings
from tests.factories import ProxyClient, messages_of, new_customer_id, new_id
from tests.fake_upstream import FakeUpstream
from tests.servers import LiveServer, serve, start_app_server

T = TypeVar("T")
STORAGE_KEY = f"scw:v1:{DEMO_SHOP}"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
REPLY_DONE = ".scw__message--assistant[data-status=complete]"
LONG = "Tell me about everything you sell and how it ships"

# Record how the last reply's text grows, to see that it streams.
WATCH_STREAM = """
window.__lengths = [];
new MutationObserver(() => {
  const bubbles = document.querySelectorAll('.scw__message--assistant .scw__bubble');
  const last = bubbles[bubbles.length - 1];
  if (last) window.__lengths.push(last.textContent.length);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


@pytest.fixture(scope="module")
def storefront(database_url: str) -> Iterator[LiveServer]:
    live = start_app_server(make_settings(database_url, offline_word_delay=0.03))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def slow_storefront(database_url: str) -> Iterator[LiveServer]:
    live = start_app_server(make_settings(database_url, offline_word_delay=0.15))
    yield live
    live.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run database work beside Playwright, whose sync API holds this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def db_messages(database_url: str, session_id: str) -> list[Message]:
    async def read() -> list[Message]:
        db = Database(database_url, poolclass=NullPool)
        try:
            return await messages_of(db, DEMO_SHOP, session_id)
        finally:
            await db.dispose()

    return run(read())


class Shopper:
    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.proxy_requests: list[str] = []
        page.on(
            "request",
            lambda r: (
                self.proxy_requests.append(f"{r.method} {r.url}") if "/apps/chat" in r.url else None
            ),
        )

    def visit(self, query: str = "") -> Shopper:
        self.page.goto(f"{self.server.url}/storefront{query}")
        self.page.wait_for_function("customElements.get('chat-widget') !== undefined")
        return self

    def open(self) -> None:
        if not self.page.locator(".scw__panel").is_visible():
            self.page.click(".scw__launcher")
        expect(self.page.locator(".scw__panel")).to_be_visible()

    def send(self, text: str) -> None:
        self.page.fill(".scw textarea", text)
        self.page.keyboard.press("Enter")

    def wait_replies(self, count: int) -> None:
        try:
            expect(self.page.locator(REPLY_DONE)).to_have_count(count, timeout=15_000)
        except AssertionError as error:
            # What the widget shows instead, and what it asked: a reply that never completes
            # says here whether it ended otherwise (stopped, an error) or never came.
            replies = self.page.eval_on_selector_all(
                ".scw__message--assistant",
                "items => items.map(i =>"
                " [i.dataset.status, i.dataset.id, i.textContent.slice(0, 80)])",
            )
            raise AssertionError(
                f"{error}\nthe widget's replies: {replies}\nits requests: {self.proxy_requests}"
            ) from None

    def stored(self) -> dict:
        raw = self.page.evaluate(f"localStorage.getItem({json.dumps(STORAGE_KEY)})")
        return json.loads(raw) if raw else {}

    def texts(self, role: str) -> list[str]:
        return self.page.locator(f".scw__message--{role} .scw__bubble").all_inner_texts()


def test_nothing_is_sent_before_the_first_message_which_creates_the_session(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    page.add_init_script(WATCH_STREAM)
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    expect(page.locator(".scw__message--greeting .scw__bubble")).to_have_text(
        "Hi! How can I help you today?"
    )
    page.wait_for_timeout(300)
    assert shopper.proxy_requests == [], "opening the widget sends nothing"
    assert shopper.stored().get("sessionId") is None

    shopper.send("How long does shipping take?")
    shopper.wait_replies(1)

    session_id = shopper.stored()["sessionId"]
    assert UUID4.fullmatch(session_id)
    # The message, then the conversation's live channel while the panel is open (docs/live.md)
    assert shopper.proxy_requests == [
        f"POST {storefront.url}/apps/chat/messages",
        f"GET {storefront.url}/apps/chat/sessions/events?session_id={session_id}",
    ]
    assert shopper.texts("assistant")[0].startswith("Orders ship within 1–2 business days.")
    expect(page.locator(".scw__message--greeting")).to_have_count(0)
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) > 5, "the reply appeared piece by piece"
    saved = db_messages(database_url, session_id)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[1].content == shopper.texts("assistant")[0]
    expect(page.locator(".scw [aria-live=polite]")).to_have_text(saved[1].content)


def test_reload_restores_the_conversation(context: BrowserContext, storefront: LiveServer) -> None:
    shopper = Shopper(context.new_page(), storefront).visit()
    shopper.open()
    shopper.send("What is your return policy?")
    shopper.wait_replies(1)
    shopper.send("Do you ship internationally?")
    shopper.wait_replies(2)

    shopper.page.reload()
    shopper.wait_replies(2)
    assert shopper.texts("user") == ["What is your return policy?", "Do you ship internationally?"]
    expect(shopper.page.locator(".scw__panel")).to_be_visible()  # it stays open across pages

    other = Shopper(context.new_page(), storefront).visit()  # a new tab of the same shop
    other.open()
    other.wait_replies(2)
    assert other.texts("user") == shopper.texts("user")


def test_reload_mid_reply_resumes_it(
    context: BrowserContext, slow_storefront: LiveServer, database_url: str
) -> None:
    shopper = Shopper(context.new_page(), slow_storefront).visit()
    shopper.open()
    shopper.send(LONG)
    expect(shopper.page.locator(".scw__message--assistant .scw__bubble")).not_to_have_text("")
    shopper.page.reload()
    shopper.wait_replies(1)
    session_id = shopper.stored()["sessionId"]
    saved = db_messages(database_url, session_id)
    assert saved[-1].status == "complete"
    assert shopper.texts("assistant") == [saved[-1].content]
    assert shopper.texts("user") == [LONG]


def test_reset_clears_and_the_next_message_starts_a_new_session(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    shopper = Shopper(context.new_page(), storefront).visit()
    shopper.open()
    shopper.send("hello")
    shopper.wait_replies(1)
    first = shopper.stored()["sessionId"]

    shopper.page.click("[data-action=menu]")
    shopper.page.click("[data-action=reset]")
    expect(shopper.page.locator(".scw__message--greeting")).to_be_visible()
    expect(shopper.page.locator(".scw__message--user")).to_have_count(0)
    assert shopper.stored().get("sessionId") is None

    requests: list[dict] = []
    shopper.page.on(
        "request",
        lambda r: (
            requests.append(r.post_data_json) if r.url.endswith("/apps/chat/messages") else None
        ),
    )
    shopper.send("hi again")
    shopper.wait_replies(1)
    second = shopper.stored()["sessionId"]
    assert second != first and UUID4.fullmatch(second)
    assert requests[0]["session_id"] == second
    assert len(db_messages(database_url, first)) == 2, "the old conversation stays for the merchant"

    async def status() -> str:
        db = Database(database_url, poolclass=NullPool)
        async with db.session() as session:
            shop = await repo.get_shop(session, domain=DEMO_SHOP)
            assert shop is not None and shop.id is not None
            conversation = await repo.session_conversation(
                session, shop_id=shop.id, session_id=first
            )
        await db.dispose()
        assert conversation is not None
        return conversation.status

    assert run(status()) == "ended"


def test_end_chat_asks_first(
    context: BrowserContext, storefront: LiveServer, artifacts_dir: Path
) -> None:
    shopper = Shopper(context.new_page(), storefront).visit()
    shopper.open()
    shopper.send("hello")
    shopper.wait_replies(1)
    shopper.page.click("[data-action=menu]")
    shopper.page.screenshot(path=str(artifacts_dir / "widget-menu-1280.png"))
    shopper.page.click("[data-action=end]")
    expect(shopper.page.locator(".scw__confirm")).to_be_visible()
    shopper.page.screenshot(path=str(artifacts_dir / "widget-end-confirm-1280.png"))
    shopper.page.click("[data-action=cancel-end]")
    assert shopper.stored()["sessionId"], "cancel keeps the chat"
    shopper.page.click("[data-action=menu]")
    shopper.page.click("[data-action=end]")
    shopper.page.click("[data-action=confirm-end]")
    expect(shopper.page.locator(".scw__panel")).to_be_hidden()
    assert shopper.stored().get("sessionId") is None


BLOCK_STORAGE = """
for (const name of ['localStorage', 'sessionStorage']) {
  const blocked = () => { throw new DOMException('blocked', 'SecurityError'); };
  Object.defineProperty(window, name, { get: blocked });
}
delete Crypto.prototype.randomUUID;
"""


def test_chat_works_when_storage_throws(context: BrowserContext, storefront: LiveServer) -> None:
    page = context.new_page()
    page.add_init_script(BLOCK_STORAGE)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[dict] = []
    page.on("request", lambda r: requests.append(r.post_data_json) if r.method == "POST" else None)
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    shopper.send("How much does shipping cost?")
    shopper.wait_replies(1)
    shopper.send("How do I find my size?")
    shopper.wait_replies(2)
    assert errors == []
    sessions = {r["session_id"] for r in requests}
    assert len(sessions) == 1, "one session for the page, kept in memory"
    assert UUID4.fullmatch(sessions.pop()), "made with getRandomValues when randomUUID is missing"


def test_failed_turn_shows_error_and_retry_sends_no_duplicate(
    context: BrowserContext, storefront: LiveServer, database_url: str, artifacts_dir: Path
) -> None:
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    page.route("**/apps/chat/messages", lambda route: route.abort("connectionreset"))
    shopper.send("What is your return policy?")
    error = page.locator(".scw__error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Something went wrong")
    page.screenshot(path=str(artifacts_dir / "widget-error-1280.png"))
    page.unroute("**/apps/chat/messages")

    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.method == "POST" else None)
    page.click("[data-action=retry]")
    shopper.wait_replies(1)
    expect(error).to_be_hidden()
    assert shopper.texts("user") == ["What is your return policy?"]
    session_id = shopper.stored()["sessionId"]
    saved = db_messages(database_url, session_id)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[0].client_message_id == bodies[0]["client_message_id"]


def test_retry_after_the_server_saved_the_message_does_not_duplicate_it(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    shopper.open()

    def lose_the_answer(route: Route) -> None:
        route.fetch()  # the server gets and saves the message; the answer never arrives
        route.abort("connectionreset")

    page.route("**/apps/chat/messages", lose_the_answer)
    shopper.send("How can I track my order?")
    expect(page.locator(".scw__error")).to_be_visible()
    page.unroute("**/apps/chat/messages")
    page.click("[data-action=retry]")
    shopper.wait_replies(1)
    saved = db_messages(database_url, shopper.stored()["sessionId"])
    assert [m.content for m in saved if m.role == "user"] == ["How can I track my order?"]
    assert len(saved) == 2


def test_too_many_messages_says_when_to_try_again(
    context: BrowserContext, storefront: LiveServer
) -> None:
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    page.route(
        "**/apps/chat/messages",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "12", "Content-Type": "application/json"},
            body=json.dumps({"error": {"code": "rate_limited", "message": "slow down"}}),
        ),
    )
    shopper.send("hello")
    expect(page.locator(".scw__error")).to_contain_text("Too many messages, try again in 12 s")


def test_stop_stops_the_reply(
    context: BrowserContext, slow_storefront: LiveServer, database_url: str
) -> None:
    shopper = Shopper(context.new_page(), slow_storefront).visit()
    shopper.open()
    shopper.send(LONG)
    stop = shopper.page.locator(".scw__stop")
    expect(stop).to_be_visible()
    expect(shopper.page.locator(".scw__message--assistant .scw__bubble")).not_to_have_text("")
    stop.click()
    stopped = shopper.page.locator(".scw__message--assistant[data-status=stopped]")
    expect(stopped).to_have_count(1)
    expect(stopped).to_contain_text("Stopped")
    expect(stop).to_be_hidden()
    saved = db_messages(database_url, shopper.stored()["sessionId"])
    assert saved[-1].status == "stopped"
    assert saved[-1].content and shopper.texts("assistant")[0] == saved[-1].content.strip()


def test_two_tabs_share_one_conversation(context: BrowserContext, storefront: LiveServer) -> None:
    one = Shopper(context.new_page(), storefront).visit()
    two = Shopper(context.new_page(), storefront).visit()
    one.open()
    two.open()
    one.send("What is your return policy?")
    one.wait_replies(1)
    two.wait_replies(1)
    assert two.texts("user") == ["What is your return policy?"]
    assert two.texts("assistant") == one.texts("assistant")

    two.send("Do you ship internationally?")
    one.wait_replies(2)
    assert one.texts("user") == ["What is your return policy?", "Do you ship internationally?"]

    one.page.click("[data-action=menu]")
    one.page.click("[data-action=reset]")
    expect(two.page.locator(".scw__message--user")).to_have_count(0)
    expect(two.page.locator(".scw__message--greeting")).to_be_visible()


def test_the_whole_flow_by_keyboard(context: BrowserContext, storefront: LiveServer) -> None:
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('scw__launcher')"):
            break
    else:
        pytest.fail("the launcher is not reachable by Tab")
    page.keyboard.press("Enter")
    expect(page.locator(".scw__panel")).to_be_visible()
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    page.keyboard.type("How do I find my size?")
    page.keyboard.press("Enter")
    shopper.wait_replies(1)

    inside = "document.querySelector('.scw__panel').contains(document.activeElement)"
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate(inside), "focus stays inside the dialog"
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(inside)

    page.focus("[data-action=menu]")
    page.keyboard.press("Enter")
    expect(page.locator(".scw__menu")).to_be_visible()
    assert page.evaluate("document.activeElement.dataset.action") == "reset"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.action") == "end"
    page.keyboard.press("Escape")
    expect(page.locator(".scw__menu")).to_be_hidden()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # Reset conversation
    expect(page.locator(".scw__message--greeting")).to_be_visible()

    page.keyboard.press("Escape")
    expect(page.locator(".scw__panel")).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('scw__launcher')")


def test_replies_render_a_safe_markdown_subset(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    answer = (
        "Our **gift cards** come in:\n\n- $25\n- $50\n\nSee [the gift page](/pages/gifts) "
        'or <img src=x onerror="window.__owned=1"> <script>window.__owned=2</script>'
    )

    async def add_faq() -> None:
        db = Database(database_url, poolclass=NullPool)
        async with db.session() as session:
            shop = await repo.get_shop(session, domain=DEMO_SHOP)
            assert shop is not None and shop.id is not None
            entries = [
                (f.question, f.answer) for f in await repo.list_faq(session, shop_id=shop.id)
            ]
            if all(q != "Do you sell gift cards?" for q, _ in entries):
                await repo.replace_faq(
                    session,
                    shop_id=shop.id,
                    entries=[*entries, ("Do you sell gift cards?", answer)],
                )
        await db.dispose()

    run(add_faq())
    # Written behind the app's back: drop what the servers cached of the shop (for 2 s).
    shopcache.forget(DEMO_SHOP)
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    shopper.send("gift cards?")
    shopper.wait_replies(1)
    bubble = page.locator(".scw__message--assistant .scw__bubble").last
    expect(bubble.locator("strong")).to_have_text("gift cards")
    expect(bubble.locator("ul li")).to_have_count(2)
    expect(bubble.locator("a")).to_have_attribute("href", "/pages/gifts")
    expect(bubble.locator("img, script")).to_have_count(0)
    expect(bubble).to_contain_text("<img src=x")
    assert page.evaluate("window.__owned") is None


def test_widget_fits_and_leaves_the_page_alone(
    browser: Browser, storefront: LiveServer, artifacts_dir: Path
) -> None:
    for width, height in ((1280, 800), (375, 740), (320, 568)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        shopper = Shopper(page, storefront).visit()
        viewport = page.evaluate("document.querySelector('meta[name=viewport]').content")
        font = page.evaluate("getComputedStyle(document.body).fontFamily")
        page.screenshot(path=str(artifacts_dir / f"widget-closed-{width}.png"))
        shopper.open()
        shopper.send("How long does shipping take?")
        shopper.wait_replies(1)
        shopper.send("And returns?")
        shopper.wait_replies(2)
        page.screenshot(path=str(artifacts_dir / f"widget-open-{width}.png"))
        box = page.locator(".scw__panel").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        send = page.locator(".scw__send").bounding_box()
        assert send is not None and send["x"] + send["width"] <= width
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scroll"
        assert page.evaluate("document.querySelector('meta[name=viewport]').content") == viewport
        assert page.evaluate("getComputedStyle(document.body).fontFamily") == font
        context.close()


def test_reduced_motion_is_honoured(browser: Browser, storefront: LiveServer) -> None:
    context = browser.new_context(reduced_motion="reduce")
    page = context.new_page()
    Shopper(page, storefront).visit().open()
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.scw__panel')).animationName")
        == "none"
    )
    context.close()


def test_logged_in_customer_chats_under_their_id(
    context: BrowserContext, storefront: LiveServer
) -> None:
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    # Not the storefront's 1001: another test's customer 1001 would be this one's.
    customer = new_customer_id()
    page.fill("input[name=customer_id]", customer)
    page.click("text=Log in as customer")
    expect(page.locator("[data-customer]")).to_have_text(f"Logged in as customer {customer}")
    shopper.open()
    shopper.send("hello")
    shopper.wait_replies(1)
    page.click("text=Log out")
    shopper.wait_replies(0)
    expect(page.locator(".scw__message--greeting")).to_be_visible()


def test_french_storefront(context: BrowserContext, storefront: LiveServer) -> None:
    page = context.new_page()
    Shopper(page, storefront).visit("?locale=fr")
    expect(page.locator(".scw__launcher")).to_have_text("Discuter avec nous")
    page.click(".scw__launcher")
    expect(page.locator(".scw textarea")).to_have_attribute("placeholder", "Écrivez votre message…")
    expect(page.locator(".scw__message--greeting .scw__bubble")).to_have_text(
        "Bonjour ! Comment puis-je vous aider ?"
    )


def _seed(server: LiveServer, session_id: str, turns: int, end: bool = False) -> None:
    async def seed() -> None:
        async with ProxyClient(server.url, DEMO_SHOP) as client:
            for i in range(turns):
                turn = await client.send(session_id, f"question {i}")
                assert turn.last.event == "done"
            if end:
                await client.post("/proxy/sessions/end", {"session_id": session_id})

    run(seed())


def _remember(page: Page, session_id: str) -> None:
    stored = json.dumps({"sessionId": session_id, "open": True})
    page.add_init_script(f"localStorage.setItem({json.dumps(STORAGE_KEY)}, {json.dumps(stored)})")


def test_load_earlier_pages_back_through_a_long_conversation(
    context: BrowserContext, server: LiveServer, storefront: LiveServer
) -> None:
    session_id = new_id()
    _seed(server, session_id, 17)
    page = context.new_page()
    _remember(page, session_id)
    shopper = Shopper(page, storefront).visit()
    expect(page.locator(".scw__message")).to_have_count(30)
    assert shopper.texts("user")[-1] == "question 16"
    page.click("[data-action=earlier]")
    expect(page.locator(".scw__message")).to_have_count(34)
    assert shopper.texts("user")[0] == "question 0"
    expect(page.locator("[data-action=earlier]")).to_be_hidden()


def test_an_ended_session_starts_fresh(
    context: BrowserContext, server: LiveServer, storefront: LiveServer
) -> None:
    session_id = new_id()
    _seed(server, session_id, 1, end=True)
    page = context.new_page()
    _remember(page, session_id)
    shopper = Shopper(page, storefront).visit()
    expect(page.locator(".scw__message--greeting")).to_be_visible()
    expect(page.locator(".scw__message--user")).to_have_count(0)
    page.wait_for_function(
        f"!JSON.parse(localStorage.getItem({json.dumps(STORAGE_KEY)})).sessionId"
    )
    shopper.send("hello")
    shopper.wait_replies(1)
    assert shopper.stored()["sessionId"] != session_id


# The typing dots and the reply's words at every change of the widget, recorded in the page.
WATCH_TYPING = """() => {
  const typing = document.querySelector('.scw__typing');
  const reply = '.scw__message--assistant:not(.scw__message--greeting) .scw__bubble';
  const words = () => (document.querySelector(reply) || {}).textContent || '';
  const all = { attributes: true, childList: true, subtree: true, characterData: true };
  window.__typing = [];
  new MutationObserver(() => window.__typing.push([!typing.hidden, typing.textContent, words()]))
    .observe(document.querySelector('.scw'), all);
}"""


def test_typing_indicator_until_the_first_words(
    context: BrowserContext, slow_storefront: LiveServer
) -> None:
    page = context.new_page()
    shopper = Shopper(page, slow_storefront).visit()
    shopper.open()
    # Seen in the page as it changes: the dots show for the 150 ms before the first word,
    # which a poll from here can miss on a loaded machine.
    page.evaluate(WATCH_TYPING)
    shopper.send(LONG)
    typing = page.locator(".scw__typing")
    expect(page.locator(".scw__message--assistant .scw__bubble")).not_to_have_text("")
    expect(typing).to_be_hidden()
    seen = page.evaluate("window.__typing")
    shown = [words for shows, text, words in seen if shows and "The assistant is typing" in text]
    assert shown, "the dots showed"
    assert all(not words.strip() for words in shown), "only until the first words"


# ---- recovery: failed turns, replays, stalls and reconnects --------------------------------

# Every fetch the page makes, when and with which Last-Event-ID, timed in the page itself.
LOG_FETCHES = """
window.__fetches = [];
const fetchOriginal = window.fetch;
window.fetch = function (input, init) {
  const headers = (init && init.headers) || {};
  window.__fetches.push({ at: performance.now(), url: String(input),
    method: (init && init.method) || 'GET', lastEventId: headers['Last-Event-ID'] || null });
  return fetchOriginal.apply(this, arguments);
};
"""


def quick_recovery(page: Page, **timing: int) -> None:
    """The widget's stall watchdog and backoff, shortened so the test takes seconds."""
    page.evaluate(
        "timing => Object.assign(customElements.get('chat-widget').timing, timing)", timing
    )


def stream_fetches(page: Page) -> list[dict[str, Any]]:
    return [f for f in page.evaluate("window.__fetches") if "/stream" in f["url"]]


@pytest.fixture(scope="module")
def model() -> Iterator[tuple[FakeUpstream, LiveServer]]:
    fake = FakeUpstream()
    live = serve(fake.app, timeout_graceful_shutdown=1)
    yield fake, live
    live.stop()


@pytest.fixture(scope="module")
def modelled_storefront(
    database_url: str, model: tuple[FakeUpstream, LiveServer]
) -> Iterator[LiveServer]:
    """The storefront with a model server that fails as each test says."""
    live = start_app_server(
        make_settings(
            database_url,
            ai_provider="openai",
            ai_base_url=f"{model[1].url}/v1",
            ai_api_key="sk-test",
            ai_model="test-model",
        )
    )
    yield live
    live.stop()


@pytest.fixture
def fake_model(model: tuple[FakeUpstream, LiveServer]) -> Iterator[FakeUpstream]:
    fake, _ = model
    fake.scenario = "ok"
    yield fake
    fake.scenario = "ok"


def test_retry_after_a_reload_rebuilds_the_failed_turn(
    context: BrowserContext,
    modelled_storefront: LiveServer,
    fake_model: FakeUpstream,
    database_url: str,
    artifacts_dir: Path,
) -> None:
    fake_model.scenario = "http500"
    page = context.new_page()
    shopper = Shopper(page, modelled_storefront).visit()
    shopper.open()
    shopper.send("Do you have red hats?")
    expect(page.locator(".scw__error")).to_be_visible()

    page.reload()
    # Rebuilt from the history: the question, its failed reply, the error and its Retry.
    expect(page.locator(".scw__message--assistant[data-status=error]")).to_have_count(1)
    expect(page.locator(".scw__error")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "widget-failed-turn-after-reload-1280.png"))
    assert shopper.texts("user") == ["Do you have red hats?"]
    fake_model.scenario = "ok"
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.method == "POST" else None)
    page.click("[data-action=retry]")
    shopper.wait_replies(1)
    expect(page.locator(".scw__error")).to_be_hidden()
    assert shopper.texts("user") == ["Do you have red hats?"]
    assert shopper.texts("assistant") == ["Hello from the model."]
    saved = db_messages(database_url, shopper.stored()["sessionId"])
    assert [(m.role, m.status, m.content) for m in saved] == [
        ("user", "complete", "Do you have red hats?"),
        ("assistant", "complete", "Hello from the model."),
    ]
    assert [b["client_message_id"] for b in bodies] == [saved[0].client_message_id]


def test_retry_after_part_of_the_reply_shows_the_replayed_text_once(
    context: BrowserContext,
    modelled_storefront: LiveServer,
    fake_model: FakeUpstream,
    database_url: str,
    artifacts_dir: Path,
) -> None:
    fake_model.scenario = "cut"  # the model's connection drops after "Hello from"
    page = context.new_page()
    shopper = Shopper(page, modelled_storefront).visit()
    shopper.open()
    shopper.send("Do you have red hats?")
    expect(page.locator(".scw__error")).to_be_visible()
    bubble = page.locator(".scw__message--assistant .scw__bubble")
    expect(bubble).to_have_text("Hello from")
    page.screenshot(path=str(artifacts_dir / "widget-partial-reply-failed-1280.png"))
    fake_model.scenario = "ok"
    page.click("[data-action=retry]")
    shopper.wait_replies(1)
    assert shopper.texts("assistant") == ["Hello from the model."], "replaced, not appended"
    saved = db_messages(database_url, shopper.stored()["sessionId"])
    assert [m.content for m in saved] == ["Do you have red hats?", "Hello from the model."]


def test_keep_alives_alone_keep_the_stall_watchdog_quiet(
    context: BrowserContext, modelled_storefront: LiveServer, fake_model: FakeUpstream
) -> None:
    """The model says nothing for five seconds; the server's pings are all that come."""
    fake_model.scenario = "stall"
    replies = modelled_storefront.app.state.chat.replies
    replies.keep_alive = 0.5
    try:
        page = context.new_page()
        page.add_init_script(LOG_FETCHES)
        shopper = Shopper(page, modelled_storefront).visit()
        quick_recovery(page, stall=1500, backoff=100)
        shopper.open()
        shopper.send("Do you have red hats?")
        shopper.wait_replies(1)
    finally:
        replies.keep_alive = 15.0
    assert stream_fetches(page) == [], "no reconnect while the pings came"
    assert shopper.texts("assistant") == ["Hello from the model."]


class GoesSilent:
    """Plays a half-open connection: once armed, the next turn's stream stops coming after
    its first delta (keep-alives included), and the connection is left open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.armed = False
        self.last_id: str | None = None  # of the last event the shopper got

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            self.armed
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/apps/chat/messages"
        ):
            return await self.app(scope, receive, send)
        self.armed = False
        silent = False

        async def relay(message: AsgiMessage) -> None:
            nonlocal silent
            if silent:
                return
            await send(message)
            body = message.get("body", b"")
            ids = re.findall(rb"^id: (\S+)$", body, re.M)
            if ids:
                self.last_id = ids[-1].decode()
            silent = b"event: delta" in body

        await self.app(scope, receive, relay)
        if silent:  # the reply went on (and is saved); the shopper's connection hears nothing
            while (await receive())["type"] != "http.disconnect":
                pass


def test_a_stalled_stream_reconnects_from_its_last_event_and_completes(
    context: BrowserContext, database_url: str
) -> None:
    silencer = GoesSilent(create_app(make_settings(database_url, offline_word_delay=0.1)))
    server = serve(silencer)
    try:
        page = context.new_page()
        page.add_init_script(LOG_FETCHES)
        shopper = Shopper(page, server).visit()
        quick_recovery(page, stall=1500, backoff=100)
        shopper.open()
        silencer.armed = True
        shopper.send(LONG)
        shopper.wait_replies(1)
        saved = db_messages(database_url, shopper.stored()["sessionId"])
        assert shopper.texts("assistant") == [saved[-1].content], "the whole reply, once"
        streams = stream_fetches(page)
        assert len(streams) == 1, streams
        assert streams[0]["lastEventId"] == silencer.last_id, "from the last event it got"
        posted = next(f for f in page.evaluate("window.__fetches") if f["method"] == "POST")
        assert streams[0]["at"] - posted["at"] > 1500, "after the watchdog's silence"
    finally:
        server.stop()


def test_failed_reconnects_back_off_then_retry_replays_the_reply_once(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    page.add_init_script(LOG_FETCHES)
    shopper = Shopper(page, storefront).visit()
    quick_recovery(page, backoff=250, attempts=4)
    shopper.open()
    first_id: list[str] = []

    def cut_after_the_first_delta(route: Route) -> None:
        response = route.fetch()  # the server saves the turn and the whole reply
        body = response.body()
        end = body.index(b"\n\n", body.index(b"event: delta")) + 2
        first_id.extend(re.findall(r"^id: (\S+)$", body[:end].decode(), re.M)[-1:])
        route.fulfill(response=response, body=body[:end])  # then the connection breaks

    page.route("**/apps/chat/messages", cut_after_the_first_delta)
    page.route("**/apps/chat/messages/*/stream*", lambda route: route.abort("connectionreset"))
    shopper.send(LONG)
    expect(page.locator(".scw__error")).to_be_visible(timeout=15_000)
    streams = stream_fetches(page)
    assert len(streams) == 4, "a bounded number of reconnects, then the error and its Retry"
    assert {s["lastEventId"] for s in streams} == set(first_id)
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(streams)]
    for number, gap in enumerate(gaps, start=1):
        nominal = 250 * 2**number  # doubling, ±50%
        assert 0.5 * nominal - 20 <= gap <= 1.5 * nominal + 400, (number, gaps)
    bubble = page.locator(".scw__message--assistant .scw__bubble")
    expect(bubble).not_to_have_text("")

    page.unroute("**/apps/chat/messages")
    page.unroute("**/apps/chat/messages/*/stream*")
    page.click("[data-action=retry]")
    shopper.wait_replies(1)
    saved = db_messages(database_url, shopper.stored()["sessionId"])
    assert [m.role for m in saved] == ["user", "assistant"]
    assert shopper.texts("assistant") == [saved[-1].content], "replayed from its start, once"
