"""Direct streams in Chromium: with the local storefront's app proxy buffering whole responses,
the widget notices, streams from the app's own host (another origin: CORS, a ticket, no
cookies) and remembers it; resumes there after a reload; falls back to the proxy when the
direct host cannot be reached; and a refused ticket costs nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from app.dev.demo import DEMO_SHOP
from tests.conftest import make_settings
from tests.servers import LiveServer, start_storefront_server
from tests.test_widget import REPLY_DONE, db_messages

STORAGE_KEY = f"scw:v1:{DEMO_SHOP}"
QUESTION = "Tell me about everything you sell and how it ships"
# When the last reply's text grew on screen, and to what length.
WATCH_STREAM = """
window.__growth = [];
new MutationObserver(() => {
  const bubbles = document.querySelectorAll('.scw__message--assistant .scw__bubble');
  const last = bubbles[bubbles.length - 1];
  if (last) window.__growth.push([performance.now(), last.textContent.length]);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


@pytest.fixture(scope="module")
def storefront(database_url: str) -> Iterator[LiveServer]:
    # Words 40 ms apart: a streamed reply takes a second or more, a buffered one arrives at once.
    live = start_storefront_server(make_settings(database_url, offline_word_delay=0.04))
    yield live
    live.stop()


@pytest.fixture
def buffering(storefront: LiveServer) -> Iterator[None]:
    emulator = storefront.app.state.proxy_emulator
    emulator.buffering = True
    yield
    emulator.buffering = False


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


# A shopper whose widget found the proxy buffering on an earlier page (once: not on a reload).
REMEMBERED = (
    f"if (!localStorage.getItem({json.dumps(STORAGE_KEY)}))"
    f" localStorage.setItem({json.dumps(STORAGE_KEY)}, JSON.stringify({{direct: true}}))"
)


def _visit(page: Page, storefront: LiveServer) -> Page:
    # The page on localhost, the app's host (SHOPIFY_APP_URL) on 127.0.0.1: another origin.
    page.goto(storefront.url.replace("127.0.0.1", "localhost") + "/storefront")
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    if not page.locator(".scw__panel").is_visible():
        page.click(".scw__launcher")
    return page


def _send(page: Page, text: str, replies: int) -> float:
    """Send and wait for the reply; how many ms its text took to appear, first word to last."""
    page.evaluate("window.__growth = []")
    page.fill(".scw textarea", text)
    page.keyboard.press("Enter")
    expect(page.locator(REPLY_DONE)).to_have_count(replies, timeout=20_000)
    growth = [when for when, length in page.evaluate("window.__growth") if length > 0]
    return growth[-1] - growth[0] if growth else 0.0


def _stored(page: Page) -> dict:
    raw = page.evaluate(f"localStorage.getItem({json.dumps(STORAGE_KEY)})")
    return json.loads(raw) if raw else {}


def test_a_buffering_proxy_is_noticed_and_replies_then_stream_directly(
    context: BrowserContext, storefront: LiveServer, buffering: None, artifacts_dir: Path
) -> None:
    page = context.new_page()
    page.add_init_script(WATCH_STREAM)
    notes: list[str] = []
    page.on("console", lambda message: notes.append(message.text))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    _visit(page, storefront)
    direct = storefront.url + "/direct"
    expect(page.locator("chat-widget")).to_have_attribute("data-direct-url", direct)
    expect(page.locator("chat-widget")).to_have_attribute("data-direct-mode", "auto")

    # The offline assistant's words are 40 ms apart: streamed, a reply takes a second or more.
    buffered = _send(page, QUESTION, 1)
    assert buffered < 200, f"through the buffering proxy it came at once ({buffered:.0f} ms)"
    assert any("streaming directly from now on" in note for note in notes), notes
    assert _stored(page).get("direct") is True
    assert not any("/direct/" in r for r in requests)

    streamed = _send(page, QUESTION, 2)
    assert streamed > 500, f"directly, it streamed word by word ({streamed:.0f} ms)"
    assert f"POST {direct}/messages" in requests
    tickets = [r for r in requests if r.endswith("/apps/chat/sessions/ticket")]
    assert len(tickets) == 1

    # Later pages remember it, and reuse nothing of the old page but the storage.
    page.reload()
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    requests.clear()
    again = _send(page, "How long does shipping take?", 3)
    assert again > 300, f"{again:.0f} ms"
    assert f"POST {direct}/messages" in requests
    page.screenshot(path=str(artifacts_dir / "widget-direct-streams-1280.png"))


def test_a_reply_resumes_through_the_direct_host_after_a_reload(
    context: BrowserContext, storefront: LiveServer, buffering: None, database_url: str
) -> None:
    page = context.new_page()
    page.add_init_script(REMEMBERED)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    _visit(page, storefront)
    page.fill(".scw textarea", QUESTION)
    page.keyboard.press("Enter")
    bubble = page.locator(".scw__message--assistant .scw__bubble").last
    expect(bubble).not_to_have_text("", timeout=10_000)
    page.reload()  # mid-reply
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    expect(page.locator(REPLY_DONE)).to_have_count(1, timeout=20_000)
    resumed = [r for r in requests if "/direct/messages/" in r and r.startswith("GET")]
    assert resumed, requests
    session_id = _stored(page)["sessionId"]
    saved = db_messages(database_url, session_id)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert (
        page.locator(".scw__message--assistant .scw__bubble").last.inner_text() == saved[1].content
    )


def test_with_the_direct_host_unreachable_the_proxy_still_answers(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    page.add_init_script(REMEMBERED)
    page.route("**/direct/**", lambda route: route.abort("connectionrefused"))
    notes: list[str] = []
    page.on("console", lambda message: notes.append(message.text))
    _visit(page, storefront)
    _send(page, "How long does shipping take?", 1)
    assert any("cannot be reached" in note for note in notes), notes
    reply = page.locator(".scw__message--assistant .scw__bubble").last
    expect(reply).to_contain_text("Orders ship within")
    saved = db_messages(database_url, _stored(page)["sessionId"])
    assert [m.role for m in saved] == ["user", "assistant"]


def test_a_refused_ticket_is_fetched_again_and_the_turn_sent_once(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    page.add_init_script(REMEMBERED)
    refused: list[dict] = []

    def expire_once(route) -> None:  # type: ignore[no-untyped-def]
        if not refused and route.request.method == "POST":
            refused.append(route.request.post_data_json)
            route.fulfill(
                status=401,
                content_type="application/json",
                headers={"Access-Control-Allow-Origin": "*"},
                body=json.dumps(
                    {"error": {"code": "ticket_expired", "message": "The ticket has expired."}}
                ),
            )
        else:
            route.continue_()

    page.route("**/direct/messages", expire_once)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    _visit(page, storefront)
    _send(page, "How much does shipping cost?", 1)
    assert len([r for r in requests if r.endswith("/sessions/ticket")]) == 2
    sent = [r for r in requests if r.endswith("/direct/messages")]
    assert len(sent) == 2, "sent again with a new ticket"
    saved = db_messages(database_url, _stored(page)["sessionId"])
    assert [m.role for m in saved] == ["user", "assistant"], "one turn"
    assert saved[0].client_message_id == refused[0]["client_message_id"]
