"""Product cards in the widget, in Chromium against the local storefront and its demo catalog:
the product on the page, cards a keyboard can use, add to cart through Shopify's Ajax Cart
API (and Shopify's own errors), 320 px, and the widget's look kept under Dawn's CSS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import make_settings
from tests.servers import LiveServer, start_storefront_server
from tests.test_widget import REPLY_DONE

# Dawn's rules that reach a guest element (layout/theme.liquid's inline style and base.css),
# restated: the root font size, the body's type, headings, empty elements, the focus ring.
DAWN = (Path(__file__).parent / "fixtures" / "dawn-base.css").read_text()
MERINO = "merino-crew-sweater"


@pytest.fixture(scope="module")
def storefront(database_url: str) -> Iterator[LiveServer]:
    live = start_storefront_server(make_settings(database_url, offline_word_delay=0.005))
    yield live
    live.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def _product_page(page: Page, storefront: LiveServer, handle: str = MERINO) -> Page:
    page.goto(f"{storefront.url}/storefront/products/{handle}")
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    expect(page.locator("chat-widget")).to_have_attribute("data-product", handle)
    page.click(".scw__launcher")
    return page


def _ask(page: Page, text: str, replies: int) -> None:
    page.fill(".scw textarea", text)
    page.keyboard.press("Enter")
    expect(page.locator(REPLY_DONE)).to_have_count(replies, timeout=15_000)


def test_the_product_on_the_page_gets_a_card_that_adds_it_to_the_cart_by_keyboard(
    context: BrowserContext, storefront: LiveServer, artifacts_dir: Path
) -> None:
    page = _product_page(context.new_page(), storefront)
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if "/messages" in r.url else None)
    _ask(page, "Do you have this in medium?", 1)
    assert sent[0]["context"] == {"product": MERINO, "conversation": "shop"}
    reply = page.locator(".scw__message--assistant").last
    expect(reply.locator(".scw__bubble")).to_have_text(
        "Yes! The Merino Crew Sweater in M is in stock, at $89.00."
    )
    card = reply.locator(".scw__card")
    expect(card).to_have_count(1)
    expect(card.locator(".scw__card-title")).to_have_text("Merino Crew Sweater")
    expect(card.locator(".scw__card-price")).to_have_text("$89.00")
    expect(card.locator(".scw__card-variant")).to_contain_text("M /")
    expect(card.locator("img")).to_have_attribute("alt", "Merino Crew Sweater")
    page.screenshot(path=str(artifacts_dir / "widget-product-card-1280.png"))
    # Keyboard only: from the card's link to its button, and Enter.
    card.locator(".scw__card-link").focus()
    page.keyboard.press("Tab")
    expect(card.locator(".scw__card-add")).to_be_focused()
    page.keyboard.press("Enter")
    expect(card.locator(".scw__card-status")).to_have_text("Added to your cart")
    expect(page.locator("#cart-icon-bubble .cart-count-bubble")).to_contain_text("1")
    cart = json.loads(page.evaluate("fetch('/cart.js').then(r => r.text())"))
    assert cart["item_count"] == 1 and cart["items"][0]["title"].startswith("Merino Crew Sweater")
    # After a reload, the card comes back with the history.
    page.reload()
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    expect(page.locator(".scw__panel")).to_be_visible()  # it was open: it opens again
    expect(page.locator(".scw__card .scw__card-title")).to_have_text("Merino Crew Sweater")


def test_sold_out_is_shown_and_shopifys_own_cart_error_reaches_the_shopper(
    browser: Browser, context: BrowserContext, storefront: LiveServer, artifacts_dir: Path
) -> None:
    page = _product_page(context.new_page(), storefront, "chunky-knit-scarf")
    _ask(page, "Is this in stock?", 1)
    expect(page.locator(".scw__message--assistant .scw__bubble").last).to_have_text(
        "The Chunky Knit Scarf ($49.00) is sold out at the moment."
    )
    sold_out = page.locator(".scw__card-add").last
    expect(sold_out).to_have_text("Sold out")
    expect(sold_out).to_be_disabled()
    other = browser.new_context(viewport={"width": 1280, "height": 800})  # another shopper
    page = _product_page(other.new_page(), storefront)
    # The cart refuses (someone bought the last one meanwhile): Shopify's words are shown.
    page.route(
        "**/cart/add.js",
        lambda route: route.fulfill(
            status=422,
            content_type="application/json",
            body=json.dumps(
                {
                    "status": 422,
                    "message": "Cart Error",
                    "description": "You can only add 0 Merino Crew Sweater to the cart.",
                }
            ),
        ),
    )
    _ask(page, "is it in large?", 1)
    page.locator(".scw__card-add").last.click()
    status = page.locator(".scw__card-status").last
    expect(status).to_have_text("You can only add 0 Merino Crew Sweater to the cart.")
    expect(status).to_have_class("scw__card-status scw__card-status--error")
    page.screenshot(path=str(artifacts_dir / "widget-card-cart-error-1280.png"))
    other.close()


def test_cards_make_a_row_that_scrolls_at_320_px(
    browser: Browser, storefront: LiveServer, artifacts_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640})
    try:
        page = context.new_page()
        page.goto(f"{storefront.url}/storefront")
        page.wait_for_function("customElements.get('chat-widget') !== undefined")
        page.click(".scw__launcher")
        _ask(page, "Do you have merino socks or beanies under $30?", 1)
        row = page.locator(".scw__cards").last
        expect(row.locator(".scw__card").first).to_be_visible()
        sizes = row.evaluate(
            "r => ({scroll: r.scrollWidth, client: r.clientWidth, cards: r.children.length,"
            " panel: document.querySelector('.scw__panel').getBoundingClientRect().width})"
        )
        assert sizes["cards"] >= 2
        assert sizes["panel"] <= 320, "the panel fits the screen"
        assert sizes["scroll"] > sizes["client"], "more cards than fit: the row scrolls"
        page.screenshot(path=str(artifacts_dir / "widget-cards-320.png"))
    finally:
        context.close()


# What a theme could change by inheritance: type, spacing and sizes of each part.
MEASURE = """() => {
  const pick = (selector) => {
    const node = document.querySelector(selector);
    const style = getComputedStyle(node);
    const box = node.getBoundingClientRect();
    return [style.fontSize, style.letterSpacing, style.lineHeight, style.fontFamily,
            style.fontWeight, style.paddingTop, style.paddingLeft, style.boxShadow,
            Math.round(box.width), Math.round(box.height), style.display];
  };
  const parts = ['.scw__panel', '.scw__title', '.scw__message--assistant .scw__bubble',
    '.scw__message--user .scw__bubble', '.scw__card', '.scw__card-title', '.scw__card-price',
    '.scw__card-add', '.scw__card-status', '.scw textarea', '.scw__button', '.scw [aria-live]'];
  return Object.fromEntries(parts.map((selector) => [selector, pick(selector)]));
}"""


def test_the_widget_keeps_its_look_under_dawns_css(
    context: BrowserContext, storefront: LiveServer, artifacts_dir: Path
) -> None:
    page = _product_page(context.new_page(), storefront)
    _ask(page, "Do you have this in medium?", 1)
    page.locator(".scw textarea").blur()
    plain = page.evaluate(MEASURE)
    page.add_style_tag(content=DAWN)
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "10px"
    assert page.evaluate("getComputedStyle(document.body).letterSpacing") == "0.6px"
    themed = page.evaluate(MEASURE)
    changed = {part: (plain[part], themed[part]) for part in plain if plain[part] != themed[part]}
    assert not changed, changed
    page.screenshot(path=str(artifacts_dir / "widget-under-dawn-1280.png"))
    # Keyboard focus shows our ring, not the theme's shadow.
    page.locator(".scw__card-add").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    ring = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert ring == "none"


def test_ask_about_this_product_keeps_one_conversation_per_product(
    context: BrowserContext, storefront: LiveServer, artifacts_dir: Path
) -> None:
    page = context.new_page()
    page.goto(f"{storefront.url}/storefront/products/{MERINO}?ask=product")
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    ask = page.locator("[data-scw-ask]")
    expect(ask).to_have_text("Ask about this product")
    page.screenshot(path=str(artifacts_dir / "storefront-ask-button-1280.png"))
    ask.click()
    expect(page.locator(".scw textarea")).to_be_focused()
    _ask(page, "Is it in large?", 1)
    expect(page.locator(".scw__message--assistant .scw__bubble").last).to_have_text(
        "Yes! The Merino Crew Sweater in L is in stock, at $89.00."
    )
    # Another product's page has a conversation of its own, and the shop's chat is apart.
    page.goto(f"{storefront.url}/storefront/products/merino-hiking-socks?ask=product")
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    page.locator("[data-scw-ask]").click()
    expect(page.locator(".scw__message--greeting")).to_have_count(1)
    page.goto(f"{storefront.url}/storefront")
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    if not page.locator(".scw__panel").is_visible():
        page.click(".scw__launcher")
    expect(page.locator(".scw__message--user")).to_have_count(0)
    # Back on the sweater: its conversation is there again.
    page.goto(f"{storefront.url}/storefront/products/{MERINO}?ask=product")
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    if not page.locator(".scw__panel").is_visible():
        page.locator("[data-scw-ask]").click()
    expect(page.locator(".scw__message--user .scw__bubble")).to_have_text(["Is it in large?"])
