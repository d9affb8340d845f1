"""Live conversations in the widget (docs/live.md), in Chromium against the local storefront: a
team member's replies reaching the shopper with the panel open and closed (badge, announcement),
the handover from the menu, the quiet turn, the email offer when nobody is online (and its going
when the team comes online), two tabs and a reload, the team ending the chat, the stream's
reconnects and the heartbeat."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect
from sqlalchemy.pool import NullPool

from app import repo
from app.db import Database
from app.dev.demo import DEMO_SHOP
from app.models import utcnow
from app.repo.team import staff
from tests.conftest import make_settings
from tests.factories import new_customer_id, session_token
from tests.servers import LiveServer, start_storefront_server
from tests.test_widget import STORAGE_KEY, Shopper, db_messages, run

DAWN = (Path(__file__).parent / "fixtures" / "dawn-base.css").read_text()
BANNER = "A person from the team will answer here."
NOBODY = "No one is online right now. Leave your email and we'll reply."

# Every fetch the page makes, with its Last-Event-ID, timed in the page.
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


def quicken(**timing: int) -> str:
    """An init script that shortens the widget's timings before the element is defined (the
    heartbeat's interval is set when it connects)."""
    return f"""
const defineOriginal = customElements.define.bind(customElements);
customElements.define = (name, element, options) => {{
  if (name === 'chat-widget') Object.assign(element.timing, {json.dumps(timing)});
  return defineOriginal(name, element, options);
}};
"""


@pytest.fixture(scope="module")
def storefront(database_url: str) -> Iterator[LiveServer]:
    live = start_storefront_server(make_settings(database_url, offline_word_delay=0.01))
    yield live
    live.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


class Team:
    """A team member in the dashboard: the admin API with their session token."""

    def __init__(self, server: LiveServer, sub: str = "staff-alex", name: str = "Alex") -> None:
        self.sub = sub
        self.http = httpx.Client(base_url=server.url, timeout=30)
        answer = self.call("PUT", "/api/admin/me", {"display_name": name})
        assert answer["display_name"] == name

    def call(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        token = session_token(DEMO_SHOP, sub=self.sub)
        response = self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == status if status else response.is_success, response.text
        return response.json() if response.content else None

    def reply(self, conversation: str, text: str) -> None:
        self.call(
            "POST", f"/api/admin/conversations/{conversation}/messages", {"message": text}, 201
        )

    def transcript(self, conversation: str) -> Any:
        return self.call("GET", f"/api/admin/conversations/{conversation}")

    def open_inbox(self) -> None:
        """The dashboard's inbox opened (its event stream), until its first event: `ready`
        comes once the team member is written as seen."""
        token = session_token(DEMO_SHOP, sub=self.sub)
        headers = {"Authorization": f"Bearer {token}"}
        with self.http.stream("GET", "/api/admin/inbox/events", headers=headers) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("event:"):
                    assert line == "event: ready", line
                    return


def saved_conversation(database_url: str, session_id: str) -> Any:
    async def read() -> Any:
        db = Database(database_url, poolclass=NullPool)
        try:
            async with db.session() as session:
                shop = await repo.get_shop(session, domain=DEMO_SHOP)
                assert shop is not None and shop.id is not None
                found = await repo.session_conversation(
                    session, shop_id=shop.id, session_id=session_id
                )
        finally:
            await db.dispose()
        assert found is not None
        return found

    return run(read())


def conversation_of(database_url: str, session_id: str) -> str:
    return str(saved_conversation(database_url, session_id).public_id)


def nobody_online(database_url: str) -> None:
    """The demo shop's team last seen an hour ago: no one is online."""

    async def update() -> None:
        db = Database(database_url, poolclass=NullPool)
        try:
            async with db.transaction() as connection:
                shop = await repo.get_shop(connection, domain=DEMO_SHOP)
                assert shop is not None
                await connection.execute(
                    sa.update(staff)
                    .where(staff.c.shop_id == shop.id)
                    .values(seen_at=utcnow() - timedelta(hours=1))
                )
        finally:
            await db.dispose()

    run(update())


def live_fetches(page: Page) -> list[dict[str, Any]]:
    return [f for f in page.evaluate("window.__fetches") if "/sessions/events" in f["url"]]


def chat(shopper: Shopper, text: str, replies: int) -> str:
    shopper.send(text)
    shopper.wait_replies(replies)
    return str(shopper.stored()["sessionId"])


def streaming(page: Page) -> None:
    """Until the widget's live stream is connected (a first connection starts from now)."""
    page.wait_for_function("(document.querySelector('chat-widget').liveStream || {}).open === true")


def test_a_team_members_reply_appears_in_the_open_panel(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    session_id = chat(shopper, "Do you gift wrap?", 1)
    streaming(page)
    conversation = conversation_of(database_url, session_id)
    team = Team(storefront)

    team.call("POST", f"/api/admin/conversations/{conversation}/typing")
    expect(page.locator(".scw__typist")).to_have_text("Alex is typing…")
    team.reply(conversation, "Hi, I'm Alex from the shop. Yes, for free!")
    reply = page.locator(".scw__message--team")
    expect(reply).to_have_count(1)
    expect(reply.locator(".scw__author")).to_have_text("Alex · Team")
    expect(reply.locator(".scw__bubble")).to_have_text("Hi, I'm Alex from the shop. Yes, for free!")
    expect(page.locator(".scw__typist")).to_be_hidden()
    expect(page.locator(".scw__event")).to_have_text(["Alex joined"])
    expect(page.locator(".scw__banner")).to_contain_text(BANNER)
    expect(page.locator("[data-action=handover]")).to_be_hidden()

    # The shopper answers the team: the assistant stays quiet, and no typing dots show.
    replies = page.locator(".scw__message--assistant").count()
    shopper.send("Great, thanks!")
    expect(shopper.page.locator(".scw__message--user")).to_have_count(2)
    page.wait_for_timeout(500)
    expect(page.locator(".scw__typing")).to_be_hidden()
    assert page.locator(".scw__message--assistant").count() == replies
    saved = db_messages(database_url, session_id)
    assert [(m.role, m.content) for m in saved][-2:] == [
        ("team", "Hi, I'm Alex from the shop. Yes, for free!"),
        ("user", "Great, thanks!"),
    ]

    # Handed back: the assistant answers again.
    team.call("POST", f"/api/admin/conversations/{conversation}/hand-back")
    expect(page.locator(".scw__event").last).to_have_text(
        "You're now chatting with the assistant again"
    )
    expect(page.locator(".scw__banner")).to_be_hidden()
    shopper.send("How long does shipping take?")
    shopper.wait_replies(replies + 1)


def test_a_reply_with_the_panel_closed_shows_the_badge_and_is_announced(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    page.add_init_script(LOG_FETCHES)
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    session_id = chat(shopper, "Where is my order?", 1)
    page.click("[data-action=menu]")
    page.click("[data-action=handover]")
    expect(page.locator(".scw__banner")).to_contain_text(BANNER)
    page.click("[data-action=close]")
    expect(page.locator(".scw__panel")).to_be_hidden()
    # Remembered for the next page (the stream's state settles on it, whatever it said first)
    page.wait_for_function(
        f"JSON.parse(localStorage.getItem({json.dumps(STORAGE_KEY)})).live.handler === 'waiting'"
    )

    # A new page with the panel closed holds the stream, since a person is in the conversation.
    page.reload()
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    expect(page.locator(".scw__panel")).to_be_hidden()
    streaming(page)
    badge = page.locator(".scw__badge")
    expect(badge).to_be_hidden()

    team = Team(storefront)
    team.reply(conversation_of(database_url, session_id), "I'm checking your order now.")
    expect(badge).to_be_visible()
    expect(badge).to_contain_text("1")
    expect(badge.locator(".scw__sr")).to_have_text("New messages: 1")
    announced = page.locator("chat-widget > [aria-live=polite]")
    expect(announced).to_have_text("Alex · Team: I'm checking your order now.")
    assert page.evaluate(
        "!document.querySelector('.scw__panel').contains(document.querySelector('[aria-live]'))"
    ), "announced from outside the hidden panel"

    # The badge stays across pages until the panel opens.
    page.reload()
    expect(page.locator(".scw__badge")).to_contain_text("1")
    shopper.open()
    expect(page.locator(".scw__badge")).to_be_hidden()
    expect(page.locator(".scw__message--team .scw__bubble")).to_have_text(
        ["I'm checking your order now."]
    )
    page.reload()
    page.wait_for_function("customElements.get('chat-widget') !== undefined")
    expect(page.locator(".scw__badge")).to_be_hidden()


def test_handover_from_the_menu_offers_the_email_when_nobody_is_online(
    context: BrowserContext, storefront: LiveServer, database_url: str, artifacts_dir: Path
) -> None:
    Team(storefront)  # so that the shop has a team, last seen...
    nobody_online(database_url)  # ...an hour ago
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    # From a fresh chat: the handover begins the conversation.
    page.click("[data-action=menu]")
    expect(page.locator("[data-action=handover]")).to_have_text("Talk to a person")
    page.click("[data-action=handover]")
    banner = page.locator(".scw__banner")
    expect(banner).to_contain_text(BANNER)
    expect(banner).to_contain_text(NOBODY)
    session_id = shopper.stored()["sessionId"]

    # The quiet turn: the message is sent, no assistant types or answers.
    shopper.send("My parcel arrived damaged.")
    expect(page.locator(".scw__message--user .scw__bubble")).to_have_text(
        ["My parcel arrived damaged."]
    )
    expect(page.locator(".scw__typing")).to_be_hidden()
    expect(page.locator(".scw__stop")).to_be_hidden()
    page.wait_for_timeout(500)
    expect(page.locator(".scw__message--assistant:not(.scw__message--greeting)")).to_have_count(0)
    expect(page.locator(".scw__error")).to_be_hidden()

    email = page.locator(".scw__contact input[type=email]")
    expect(email).to_have_accessible_name("Your email")
    email.fill("not an address")
    page.click(".scw__contact button")
    expect(page.locator(".scw__contact-note")).to_be_hidden()  # the browser refuses it first
    page.screenshot(path=str(artifacts_dir / "widget-live-email-offer-1280.png"))
    email.fill("shopper@example.com")
    email.press("Enter")
    note = page.locator(".scw__contact-note")
    expect(note).to_have_text("We'll email you at shopper@example.com")
    expect(page.locator(".scw__contact")).to_be_hidden()
    expect(banner).not_to_contain_text(NOBODY)

    saved = saved_conversation(database_url, session_id)
    assert (saved.contact_email, saved.handler) == ("shopper@example.com", "waiting")
    transcript = Team(storefront).transcript(saved.public_id)
    assert [m["content"] for m in transcript["messages"]] == ["My parcel arrived damaged."]

    page.reload()  # everything stays
    expect(page.locator(".scw__banner")).to_contain_text(BANNER)
    expect(note).to_have_text("We'll email you at shopper@example.com")
    expect(page.locator(".scw__message--user .scw__bubble")).to_have_text(
        ["My parcel arrived damaged."]
    )


def test_the_email_offer_goes_when_the_team_comes_online(
    context: BrowserContext, database_url: str
) -> None:
    """Over the open stream: the server here keeps it for a minute, so no reconnect brings
    the news."""
    server = start_storefront_server(
        make_settings(database_url, offline_word_delay=0.005, live_stream_seconds=60.0)
    )
    try:
        team = Team(server)
        nobody_online(database_url)
        page = context.new_page()
        page.add_init_script(LOG_FETCHES)
        shopper = Shopper(page, server).visit()
        shopper.open()
        chat(shopper, "Can I speak to a human?", 1)
        banner = page.locator(".scw__banner")
        expect(banner).to_contain_text(NOBODY)
        expect(page.locator(".scw__contact")).to_be_visible()
        streaming(page)
        streams = len(live_fetches(page))

        team.open_inbox()
        expect(page.locator(".scw__contact")).to_be_hidden()
        expect(banner).to_contain_text(BANNER)
        expect(banner).not_to_contain_text(NOBODY)
        assert len(live_fetches(page)) == streams, "told over the stream it had open"
        page.close()  # its stream with it: the server stops at once
    finally:
        server.stop()


def test_two_tabs_show_every_message_once(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    one = Shopper(context.new_page(), storefront).visit()
    two = Shopper(context.new_page(), storefront).visit()
    one.open()
    two.open()
    session_id = chat(one, "What is your return policy?", 1)
    two.wait_replies(1)
    streaming(one.page)
    streaming(two.page)
    one.proxy_requests.clear()
    chat(two, "Do you ship internationally?", 2)
    one.wait_replies(2)
    assert not any("/history" in r for r in one.proxy_requests), "through the live stream"
    two.page.click("[data-action=menu]")
    two.page.click("[data-action=handover]")
    expect(one.page.locator(".scw__banner")).to_contain_text(BANNER)
    one.send("Can I talk to someone about a big order?")
    team = Team(storefront)
    expect(two.page.locator(".scw__message--user")).to_have_count(3)
    team.reply(conversation_of(database_url, session_id), "Sure, how many do you need?")

    saved = db_messages(database_url, session_id)
    expected = [m.content for m in saved]
    assert len(expected) == 6
    for shopper in (one, two):
        expect(shopper.page.locator(".scw__message--team")).to_have_count(1)
        bubbles = shopper.page.locator(".scw__message:not(.scw__message--greeting) .scw__bubble")
        expect(bubbles).to_have_count(6)
        assert [text.strip() for text in bubbles.all_inner_texts()] == [
            text.strip() for text in expected
        ]
        expect(shopper.page.locator(".scw__event", has_text="Alex joined")).to_have_count(1)

    # A reload keeps everything, once.
    two.page.reload()
    two.wait_replies(2)
    bubbles = two.page.locator(".scw__message:not(.scw__message--greeting) .scw__bubble")
    expect(bubbles).to_have_count(6)
    expect(two.page.locator(".scw__message--team .scw__author")).to_have_text(["Alex · Team"])
    expect(two.page.locator(".scw__banner")).to_contain_text(BANNER)


def logged_in(browser: Browser, storefront: LiveServer, customer: str | None) -> BrowserContext:
    """A device of its own (cookies, storage), logged in on the storefront as `customer`."""
    device = browser.new_context(viewport={"width": 1280, "height": 800})
    if customer:
        device.add_cookies([{"name": "scw_dev_customer", "value": customer, "url": storefront.url}])
    return device


def test_a_customers_conversation_follows_them_to_their_phone(
    browser: Browser, storefront: LiveServer, database_url: str
) -> None:
    customer = new_customer_id()  # the demo shop is shared by the suite
    devices = [logged_in(browser, storefront, who) for who in (customer, customer, None)]
    try:
        laptop, phone, guest = (Shopper(d.new_page(), storefront).visit() for d in devices)
        laptop.open()
        session_id = chat(laptop, "Do you deliver on Saturdays?", 1)
        streaming(laptop.page)

        phone.open()
        expect(phone.page.locator(".scw__message--user .scw__bubble")).to_have_text(
            ["Do you deliver on Saturdays?"]
        )
        phone.wait_replies(1)
        assert phone.stored()["sessionId"] == session_id, "it carries on in that session"
        streaming(phone.page)

        # Each device sees what the other writes, through the conversation's live stream.
        chat(phone, "And on Sundays?", 2)
        laptop.wait_replies(2)
        expect(laptop.page.locator(".scw__message--user .scw__bubble")).to_have_text(
            ["Do you deliver on Saturdays?", "And on Sundays?"]
        )
        laptop.send("Thanks!")
        expect(phone.page.locator(".scw__message--user")).to_have_count(3)
        saved = db_messages(database_url, session_id)
        assert [m.content for m in saved if m.role == "user"] == [
            "Do you deliver on Saturdays?",
            "And on Sundays?",
            "Thanks!",
        ]

        # Someone not logged in on a third device sees none of it.
        guest.open()
        guest.page.wait_for_timeout(500)
        expect(guest.page.locator(".scw__message--greeting")).to_be_visible()
        expect(guest.page.locator(".scw__message--user")).to_have_count(0)
        assert guest.stored().get("sessionId") is None
        assert not any("customer=1" in r for r in guest.proxy_requests)
    finally:
        for device in devices:
            device.close()


def test_a_first_message_sent_before_the_customers_history_comes_stays(
    browser: Browser, storefront: LiveServer, database_url: str
) -> None:
    """A logged-in customer's panel asks for their current conversation as it opens; one who
    writes before the answer comes (a slow network) keeps their message and its reply: the
    answer, "nothing yet" or their new conversation, does not draw over what they wrote. (It
    did: the phone test, which writes at once, failed now and then with an empty panel.)"""
    device = logged_in(browser, storefront, new_customer_id())
    try:
        page = device.new_page()
        # The history's answer reaches the page a second late (the request goes at once).
        page.add_init_script(
            """
            const fetched = window.fetch;
            window.__held = [];
            window.fetch = async (...args) => {
              const response = await fetched(...args);
              if (String(args[0]).includes('/history')) {
                window.__held.push(String(args[0]));
                await new Promise((resolve) => setTimeout(resolve, 1000));
              }
              return response;
            };
            """
        )
        shopper = Shopper(page, storefront).visit()
        shopper.open()
        session_id = chat(shopper, "Do you deliver on Saturdays?", 1)
        held = page.evaluate("window.__held")
        assert held and "customer=1" in held[0], "the history was asked for, and held"
        expect(page.locator(".scw__message--user .scw__bubble")).to_have_text(
            ["Do you deliver on Saturdays?"]
        )
        page.wait_for_timeout(1200)  # past the held answer
        expect(page.locator(".scw__message--user .scw__bubble")).to_have_text(
            ["Do you deliver on Saturdays?"]
        )
        shopper.wait_replies(1)
        assert shopper.stored()["sessionId"] == session_id
        assert [m.role for m in db_messages(database_url, session_id)] == ["user", "assistant"]
    finally:
        device.close()


def test_a_conversation_the_team_ends_starts_fresh(
    context: BrowserContext, storefront: LiveServer, database_url: str
) -> None:
    page = context.new_page()
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    session_id = chat(shopper, "hello", 1)
    streaming(page)
    conversation = conversation_of(database_url, session_id)
    team = Team(storefront)
    team.reply(conversation, "Hello! Anything else?")
    expect(page.locator(".scw__message--team")).to_have_count(1)
    team.call("POST", f"/api/admin/conversations/{conversation}/end")
    expect(page.locator(".scw__event").last).to_have_text("This conversation was ended")
    expect(page.locator(".scw__banner")).to_be_hidden()
    page.wait_for_function(
        f"!JSON.parse(localStorage.getItem({json.dumps(STORAGE_KEY)})).sessionId"
    )
    expect(page.locator(".scw__message--team")).to_have_count(1)  # the transcript stays

    page.reload()
    expect(page.locator(".scw__message--greeting")).to_be_visible()
    expect(page.locator(".scw__message--user")).to_have_count(0)
    assert chat(shopper, "hello again", 1) != session_id


def test_the_stream_reconnects_from_its_last_event(
    context: BrowserContext, database_url: str
) -> None:
    """The server ends each stream after a second: the widget comes back at once, from where
    it was, and misses nothing."""
    server = start_storefront_server(
        make_settings(database_url, offline_word_delay=0.005, live_stream_seconds=1.0)
    )
    try:
        page = context.new_page()
        page.add_init_script(LOG_FETCHES)
        shopper = Shopper(page, server).visit()
        shopper.open()
        session_id = chat(shopper, "hello", 1)
        page.wait_for_timeout(2600)
        streams = live_fetches(page)
        assert len(streams) >= 3, streams
        assert streams[0]["lastEventId"] is None, "a first connection starts from now"
        assert all(s["lastEventId"] for s in streams[1:]), "then from the last event"
        gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(streams)]
        assert all(900 < gap < 1500 for gap in gaps), gaps

        # Closing the panel, with no person in the conversation, lets the stream go.
        page.click("[data-action=close]")
        page.wait_for_timeout(300)
        count = len(live_fetches(page))
        page.wait_for_timeout(1500)
        assert len(live_fetches(page)) == count

        # Open again: the stream comes back from where it was, and a reply comes through it.
        shopper.open()
        streaming(page)
        assert live_fetches(page)[-1]["lastEventId"], "from the last event it saw"
        Team(server).reply(conversation_of(database_url, session_id), "Still here?")
        expect(page.locator(".scw__message--team .scw__bubble")).to_have_text(["Still here?"])
    finally:
        server.stop()


def test_a_replaced_stream_is_not_reconnected(context: BrowserContext, database_url: str) -> None:
    """One stream per session: the newer tab's closes the older's, which stays closed (until
    the shopper opens its panel again)."""
    server = start_storefront_server(
        make_settings(database_url, offline_word_delay=0.005, live_streams_per_session=1)
    )
    try:
        one = Shopper(context.new_page(), server).visit()
        one.page.add_init_script(LOG_FETCHES)
        one.page.reload()
        one.open()
        chat(one, "hello", 1)
        streaming(one.page)
        two = Shopper(context.new_page(), server).visit()
        two.open()
        streaming(two.page)
        one.page.wait_for_function("document.querySelector('chat-widget').liveStream === null")
        count = len(live_fetches(one.page))
        one.page.wait_for_timeout(1500)
        assert len(live_fetches(one.page)) == count == 1
    finally:
        server.stop()


def test_a_refused_stream_backs_off(context: BrowserContext, storefront: LiveServer) -> None:
    page = context.new_page()
    page.add_init_script(LOG_FETCHES)
    page.add_init_script(quicken(liveBackoff=200, liveCap=800))
    page.route("**/apps/chat/sessions/events*", lambda route: route.fulfill(status=503, body=""))
    shopper = Shopper(page, storefront).visit()
    shopper.open()
    chat(shopper, "hello", 1)
    page.wait_for_timeout(3500)
    streams = live_fetches(page)
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(streams)]
    assert len(gaps) >= 3, gaps
    for number, gap in enumerate(gaps, start=1):
        nominal = min(800, 200 * 2 ** (number - 1))  # doubling up to the cap, ±50%
        assert 0.5 * nominal - 20 <= gap <= 1.5 * nominal + 200, (number, gaps)


def test_the_heartbeat_beats_while_visible_and_only_with_a_session(
    context: BrowserContext, storefront: LiveServer
) -> None:
    beats: list[Any] = []

    def beat(request: Request) -> None:
        if request.url.endswith("/sessions/heartbeat"):
            beats.append(request.post_data_json)

    page = context.new_page()
    page.add_init_script(quicken(heartbeat=300))
    page.on("request", beat)
    shopper = Shopper(page, storefront).visit()
    page.wait_for_timeout(1000)
    assert beats == [], "no session, no heartbeat"
    assert shopper.proxy_requests == [], "nor a stream, nor anything else"
    shopper.open()
    session_id = chat(shopper, "hello", 1)
    page.wait_for_timeout(1000)
    assert len(beats) >= 2 and {b["session_id"] for b in beats} == {session_id}

    hidden = context.new_page()
    hidden.add_init_script(quicken(heartbeat=300))
    hidden.add_init_script(
        "Object.defineProperty(document, 'visibilityState', { get: () => 'hidden' })"
    )
    beats.clear()
    page.close()
    hidden.on("request", beat)
    Shopper(hidden, storefront).visit()
    hidden.wait_for_timeout(1000)
    assert beats == [], "a hidden page does not keep the chat alive"


def test_screenshots_of_a_team_conversation(
    browser: Browser, storefront: LiveServer, database_url: str, artifacts_dir: Path
) -> None:
    for width, height in ((1280, 800), (375, 740)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        shopper = Shopper(page, storefront).visit()
        shopper.open()
        session_id = chat(shopper, "Do you have the merino sweater in blue?", 1)
        streaming(page)
        conversation = conversation_of(database_url, session_id)
        team = Team(storefront)
        page.click("[data-action=menu]")
        page.click("[data-action=handover]")
        expect(page.locator(".scw__banner")).to_be_visible()
        team.reply(conversation, "Hi! I'm Alex. Blue is back in stock next week, shall I note it?")
        shopper.send("Yes please, size M.")
        team.call("POST", f"/api/admin/conversations/{conversation}/typing")
        expect(page.locator(".scw__typist")).to_be_visible()
        page.locator(".scw textarea").blur()
        page.screenshot(path=str(artifacts_dir / f"widget-live-team-{width}.png"))
        page.add_style_tag(content=DAWN)
        page.screenshot(path=str(artifacts_dir / f"widget-live-team-dawn-{width}.png"))
        page.click("[data-action=close]")
        team.reply(conversation, "Noted: a blue M for you.")
        expect(page.locator(".scw__badge")).to_be_visible()
        page.screenshot(path=str(artifacts_dir / f"widget-live-badge-dawn-{width}.png"))
        context.close()
