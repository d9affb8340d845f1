"""The team's live inbox and a live conversation in the dashboard (docs/live.md), in a real
browser, logged in through the development login, with shoppers writing through the proxy."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from app.dev.demo import DEMO_SHOP
from tests.factories import Event, ProxyClient, new_id, session_token
from tests.live_client import LiveStream
from tests.servers import LiveServer
from tests.test_widget import run

DEV_SUB = "dev-merchant"  # the development login's staff member (app/merchants.py)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def tag() -> str:
    """A word only this test's conversations contain: all tests share the demo shop."""
    return f"t{uuid.uuid4().hex[:10]}"


def shopper(server: LiveServer, session_id: str, path: str, body: dict[str, Any]) -> Any:
    """One call of the shopper's widget through the signed app proxy."""

    async def call() -> Any:
        async with ProxyClient(server.url, DEMO_SHOP) as client:
            if path == "/proxy/messages":
                return await client.send(session_id, body["message"])
            if path == "/proxy/history":
                return (await client.history(session_id)).json()
            response = await client.post(path, {"session_id": session_id, **body})
            assert response.status_code == 200, response.text
            return response.json()

    return run(call())


def write(server: LiveServer, session_id: str, text: str) -> None:
    turn = shopper(server, session_id, "/proxy/messages", {"message": text})
    assert turn.status_code == 200


def team_call(server: LiveServer, sub: str, method: str, path: str, body: Any = None) -> Any:
    """Another team member, through the admin API under their own `sub` (a development token:
    the demo shop has no Shopify access token to exchange another for)."""
    headers = {"Authorization": f"Bearer {session_token(DEMO_SHOP, dev=True, sub=sub)}"}

    async def call() -> Any:
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as admin:
            response = await admin.request(method, path, json=body)
            assert response.status_code == 200, response.text
            return response.json()

    return run(call())


class ShopperStream:
    """The shopper's live stream read in a thread of its own beside Playwright, reconnecting
    from its last id whenever the server ends it (after 3 s in tests)."""

    def __init__(self, server: LiveServer, session_id: str) -> None:
        self.server = server
        self.session_id = session_id
        self.events: list[Event] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._read()), daemon=True)

    def __enter__(self) -> ShopperStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    async def _read(self) -> None:
        cursor: str | None = None
        async with ProxyClient(self.server.url, DEMO_SHOP) as client:
            while not self._stop.is_set():
                live = LiveStream(client, self.session_id, cursor)
                async with live:
                    while not self._stop.is_set():
                        try:
                            await asyncio.wait_for(live.ended.wait(), 0.1)
                            break
                        except TimeoutError:
                            continue
                self.events.extend(live.events)
                cursor = live.cursor or cursor

    def of(self, name: str) -> list[Event]:
        return [e for e in self.events if e.event == name]


def open_inbox(context: BrowserContext, server: LiveServer) -> Page:
    page = context.new_page()
    page.goto(f"{server.url}/dev/login")
    page.click("text=Open dashboard")
    expect(page).to_have_url(f"{server.url}/")
    page.click(".tabs >> text=Inbox")
    expect(page).to_have_url(f"{server.url}/inbox")
    expect(page.locator(".tabs__tab--active")).to_have_text("Inbox")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    return page


def queue(page: Page, name: str) -> Locator:
    return page.locator(f"[data-queue={name}]")


def item(page: Page, name: str, word: str) -> Locator:
    return queue(page, name).locator(".inbox__item", has_text=word)


def conversation_of(listed: Locator) -> str:
    """The public id of a conversation listed in the inbox, from its link."""
    href = listed.locator("a").get_attribute("href") or ""
    return href.split("/")[-1].split("?")[0]


def inbox_counts(server: LiveServer) -> dict[str, int]:
    return dict(team_call(server, DEV_SUB, "GET", "/api/admin/inbox")["counts"])


def test_the_inbox_updates_live_as_shoppers_write_and_ask_for_a_person(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    page = open_inbox(context, server)
    page.evaluate("window.__sameDocument = true")
    word = tag()
    session_id = new_id()

    # A shopper writes: the conversation comes into "With the assistant", unread.
    hostile = f'<img src=x onerror="window.__xss = 1"> Do you sell wool socks {word}?'
    write(server, session_id, hostile)
    with_assistant = item(page, "assistant", word)
    expect(with_assistant).to_have_count(1)
    expect(with_assistant.locator(".inbox__title")).to_have_text(hostile)  # as text, not HTML
    expect(with_assistant).to_contain_text("Unread")
    expect(with_assistant.locator(".dot--unread")).to_have_count(1)
    expect(queue(page, "assistant").locator("[data-count]")).to_have_text(
        str(inbox_counts(server)["assistant"])
    )

    # They ask for a person: it moves to "Waiting for a person", and the counts follow.
    before = inbox_counts(server)
    shopper(server, session_id, "/proxy/sessions/handover", {})
    waiting = item(page, "waiting", word)
    expect(waiting).to_have_count(1)
    expect(with_assistant).to_have_count(0)
    after = inbox_counts(server)
    assert after["waiting"] == before["waiting"] + 1
    assert after["assistant"] == before["assistant"] - 1
    expect(queue(page, "waiting").locator("[data-count]")).to_have_text(str(after["waiting"]))
    expect(queue(page, "assistant").locator("[data-count]")).to_have_text(str(after["assistant"]))
    expect(waiting.locator(".inbox__waited")).to_have_text(
        re.compile(r"^waiting (less than a minute|\d+ min)$")
    )
    expect(page.locator("[data-announce]")).to_contain_text("waiting for a person")
    expect(page).to_have_title(re.compile(rf"^\({after['waiting']}\) Inbox"))

    # Waiting comes oldest first: a newer one goes below it.
    later, newer = tag(), new_id()
    write(server, newer, f"Where is my order {later}?")
    shopper(server, newer, "/proxy/sessions/handover", {})
    expect(item(page, "waiting", later)).to_have_count(1)
    titles = queue(page, "waiting").locator(".inbox__title").all_inner_texts()
    assert titles.index(hostile) < titles.index(f"Where is my order {later}?"), titles

    # A re-read keeps the keyboard where it was.
    waiting.locator("a").focus()
    focused = waiting.locator("a").get_attribute("data-id")
    # The email the shopper left shows at once; online (a heartbeat), once the presence is
    # written (every 5 s) and the inbox read again (after each reconnect, and every 30 s).
    shopper(server, session_id, "/proxy/sessions/heartbeat", {})
    shopper(server, session_id, "/proxy/sessions/contact", {"email": f"{word}@example.com"})
    expect(waiting.locator(".inbox__email")).to_have_text(f"{word}@example.com")
    assert page.evaluate("document.activeElement.dataset.id") == focused
    expect(waiting.locator(".dot--online")).to_have_count(1, timeout=15000)
    expect(waiting).to_contain_text("Online")
    # The last message is the assistant's answer (whatever it found: the demo catalog may
    # still be importing when the test starts).
    expect(waiting.locator(".inbox__preview")).to_have_text(re.compile(r"^Assistant: \S"))

    # Taken by another team member: "With the team", and who has it.
    kim = f"kim-{word}"
    team_call(server, kim, "PUT", "/api/admin/me", {"display_name": "Kim"})
    later_id = conversation_of(item(page, "waiting", later))
    team_call(server, kim, "POST", f"/api/admin/conversations/{later_id}/take")
    held = item(page, "team", later)
    expect(held.locator(".inbox__holder")).to_have_text("With Kim")
    expect(item(page, "waiting", later)).to_have_count(0)
    expect(queue(page, "team").locator("[data-count]")).to_have_text(
        str(inbox_counts(server)["team"])
    )
    chatting = tag()
    write(server, new_id(), f"Is the merino sweater itchy {chatting}?")
    expect(item(page, "assistant", chatting)).to_have_count(1)

    assert page.evaluate("window.__sameDocument") is True, "no reload"
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(artifacts_dir / "dashboard-inbox-1280.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 740})
    expect(waiting).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "dashboard-inbox-375.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "no sideways scroll"

    # Out of the other tests' queues.
    team_call(server, DEV_SUB, "POST", f"/api/admin/conversations/{conversation_of(waiting)}/end")
    team_call(server, kim, "POST", f"/api/admin/conversations/{later_id}/end")
    expect(waiting).to_have_count(0)
    expect(held).to_have_count(0)


def test_a_team_member_takes_replies_hands_back_and_ends(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    word = tag()
    session_id = new_id()
    write(server, session_id, f"My parcel never came {word}")
    shopper(server, session_id, "/proxy/sessions/handover", {})
    page = open_inbox(context, server)

    # The name shoppers see.
    name = page.locator("[data-me] [name=display_name]")
    expect(page.get_by_label("Your name shown to shoppers")).to_be_visible()
    name.fill("")
    page.click("[data-me] button[type=submit]")
    expect(page.locator("[data-me-error]")).to_have_text(
        "Enter the name shoppers see when you reply."
    )
    name.fill("Alex")
    page.click("[data-me] button[type=submit]")
    expect(page.locator(".toast")).to_contain_text("from Alex")
    assert team_call(server, DEV_SUB, "GET", "/api/admin/me")["display_name"] == "Alex"

    item(page, "waiting", word).locator("a").click()
    expect(page).to_have_url(re.compile(r"/conversations/[0-9a-f-]{36}\?from=inbox$"))
    expect(page.locator(".back")).to_have_text("← Inbox")
    expect(page.locator(".tabs__tab--active")).to_have_text("Inbox")
    handler = page.locator("[data-handler]")
    expect(handler).to_have_text(re.compile(r"^Waiting for a person since \d\d:\d\d"))
    expect(page.locator("[data-transcript] > li")).to_have_count(2)  # a question and its answer

    with ShopperStream(server, session_id) as stream:
        # The shopper writes again: it shows without a reload.
        write(server, session_id, f"Hello? {word}")
        expect(page.locator("[data-transcript] > li.user")).to_have_count(2)
        expect(page.locator("[data-transcript] > li")).to_have_count(3)  # the assistant is quiet

        page.get_by_role("button", name="Take").click()
        expect(handler).to_have_text("With you (Alex)")
        expect(page.get_by_role("button", name="Take")).to_be_hidden()

        box = page.get_by_label("Reply to the shopper")
        box.press_sequentially("So sorry! ")
        box.press_sequentially("It left our warehouse today.")
        page.get_by_role("button", name="Send").click()
        team = page.locator("[data-transcript] > li.team")
        expect(team).to_have_count(1)
        expect(team).to_contain_text("So sorry! It left our warehouse today.")
        expect(team.locator("small")).to_contain_text("Alex · team")
        expect(box).to_have_value("")
        page.screenshot(
            path=str(artifacts_dir / "dashboard-conversation-live-1280.png"), full_page=True
        )
        page.set_viewport_size({"width": 375, "height": 740})
        page.screenshot(
            path=str(artifacts_dir / "dashboard-conversation-live-375.png"), full_page=True
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.set_viewport_size({"width": 1280, "height": 800})

        deadline = 50
        while not [m for m in stream.of("message") if m.data["role"] == "team"] and deadline:
            page.wait_for_timeout(100)
            deadline -= 1
        reached = [m.data for m in stream.of("message") if m.data["role"] == "team"]
        assert [(m["content"], m["author"]) for m in reached] == [
            ("So sorry! It left our warehouse today.", "Alex")
        ]
        typing = stream.of("typing")
        assert typing and typing[0].data == {"name": "Alex"}
        assert len(typing) <= 2, "at most one typing notice every 3 s"

    history = shopper(server, session_id, "/proxy/history", {})
    assert history["messages"][-1]["role"] == "team"
    assert history["messages"][-1]["author"] == "Alex"

    page.get_by_role("button", name="Hand back to the assistant").click()
    expect(handler).to_have_text("With the assistant")
    expect(page.get_by_role("button", name="Take")).to_be_visible()
    expect(page.get_by_role("button", name="Hand back to the assistant")).to_be_disabled()
    assert shopper(server, session_id, "/proxy/history", {})["handler"] == "assistant"

    # The assistant answers again, and its reply shows here live.
    write(server, session_id, "What is your return policy?")
    expect(page.locator("[data-transcript] > li.user")).to_have_count(3)
    expect(page.locator("[data-transcript] > li.assistant").last).not_to_contain_text("writing…")

    page.get_by_role("button", name="End conversation").click()
    expect(handler).to_have_text(re.compile(r"^Ended"))
    expect(page.locator("[data-meta] .badge")).to_have_text("ended")
    expect(page.get_by_label("Reply to the shopper")).to_be_disabled()
    expect(page.get_by_role("button", name="End conversation")).to_be_hidden()
    page.screenshot(path=str(artifacts_dir / "dashboard-conversation-ended-1280.png"))
    status = shopper(server, session_id, "/proxy/history", {})
    assert status["status"] == "ended"


def test_two_team_members_one_has_it_and_the_other_is_told(
    context: BrowserContext, server: LiveServer, artifacts_dir: Path
) -> None:
    word = tag()
    session_id = new_id()
    kim = f"kim-{word}"
    write(server, session_id, f"Can someone help me {word}?")
    shopper(server, session_id, "/proxy/sessions/handover", {})
    team_call(server, kim, "PUT", "/api/admin/me", {"display_name": "Kim"})
    page = open_inbox(context, server)
    item(page, "waiting", word).locator("a").click()
    handler = page.locator("[data-handler]")
    expect(handler).to_have_text(re.compile(r"^Waiting for a person"))
    conversation_id = page.url.split("/")[-1].split("?")[0]  # the page's own

    # Kim takes it in her own dashboard: this page follows at once.
    team_call(server, kim, "POST", f"/api/admin/conversations/{conversation_id}/take")
    expect(handler).to_have_text("With Kim")

    page.get_by_role("button", name="Take").click()
    expect(page.locator("[data-live-error]")).to_have_text("Kim has this conversation.")
    page.get_by_label("Reply to the shopper").fill("I can help too")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("[data-reply-error]")).to_have_text("Kim has this conversation.")
    expect(page.locator("[data-transcript] > li.team")).to_have_count(0)
    page.get_by_role("button", name="End conversation").click()
    expect(page.locator("[data-live-error]")).to_have_text("Kim has this conversation.")
    page.screenshot(path=str(artifacts_dir / "dashboard-conversation-taken-1280.png"))

    # In the inbox, it is with Kim.
    page.goto(f"{server.url}/inbox")
    held = item(page, "team", word)
    expect(held.locator(".inbox__holder")).to_have_text("With Kim")
    expect(held.locator(".dot--unread")).to_have_count(0)  # read when it was opened
    team_call(server, kim, "POST", f"/api/admin/conversations/{conversation_id}/end")
    expect(held).to_have_count(0)


def test_the_inbox_stream_reconnects_at_once_when_it_ends_and_backs_off_when_it_fails(
    context: BrowserContext, server: LiveServer
) -> None:
    page = open_inbox(context, server)
    connects: list[float] = []
    page.on(
        "request",
        lambda request: (
            request.url.endswith("/api/admin/inbox/events")
            and connects.append(page.evaluate("performance.now()"))
        ),
    )
    # The server ends each stream after LIVE_STREAM_SECONDS (3 s in tests): again at once.
    page.wait_for_timeout(7000)
    assert len(connects) >= 2, connects
    gaps = [b - a for a, b in itertools.pairwise(connects)]
    assert all(2500 < gap < 4000 for gap in gaps), gaps

    # Refused: "Reconnecting…", and each try waits longer than the one before (with jitter).
    refused: list[float] = []

    def refuse(route: Any) -> None:
        refused.append(time.monotonic() * 1000)
        route.fulfill(status=503, body="{}", content_type="application/json")

    page.route("**/api/admin/inbox/events", refuse)
    expect(page.locator("[data-live-state]")).to_have_text("Reconnecting…", timeout=6000)
    page.wait_for_timeout(3500)
    tries = [b - a for a, b in itertools.pairwise(refused)]
    assert 1 <= len(tries) <= 4, tries  # no tight loop
    assert all(gap >= 450 for gap in tries), tries
    page.unroute("**/api/admin/inbox/events")

    # Back, and live: a shopper's message shows without a reload.
    expect(page.locator("[data-live-state]")).to_have_text("Live", timeout=10000)
    word = tag()
    write(server, new_id(), f"Back again {word}")
    expect(item(page, "assistant", word)).to_have_count(1)


def test_a_burst_of_events_reads_the_inbox_at_most_twice(
    context: BrowserContext, server: LiveServer
) -> None:
    page = open_inbox(context, server)
    reads = page.evaluate(
        """async () => {
          let reads = 0;
          let release;
          const gate = new Promise((resolve) => (release = resolve));
          const schedule = window.scwDashboard.coalesce(async () => { reads += 1; await gate; });
          for (let i = 0; i < 10; i += 1) schedule();
          const first = reads;
          release();
          await schedule();
          await new Promise((resolve) => setTimeout(resolve, 50));
          return [first, reads];
        }"""
    )
    assert reads == [1, 2], "one read in flight, and one more for what came meanwhile"
