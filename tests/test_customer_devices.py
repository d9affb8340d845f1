"""A logged-in customer's conversation follows them to their other devices (docs/live.md):
`GET /proxy/history?customer=1` answers with the customer's current conversation, whichever
device started it; nobody else's request ever gets it."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlencode

import pytest

from app.db import Database
from app.models import Conversation
from app.shopify import sign_proxy_query
from tests.factories import TEST_API_SECRET, ProxyClient, make_shop, new_customer_id, new_id
from tests.servers import LiveServer
from tests.test_live import conversation_row


async def said(client: ProxyClient, session_id: str, text: str, **kwargs: object) -> None:
    turn = await client.send(session_id, text, **kwargs)  # type: ignore[arg-type]
    assert turn.status_code == 200, turn.body


async def page(client: ProxyClient, session_id: str, **params: str) -> dict[str, object]:
    response = await client.history(session_id, **params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def texts(body: dict[str, object]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]  # type: ignore[attr-defined,index]


async def seen_written(db: Database, shop: str, session_id: str) -> Conversation:
    """The conversation once the shopper's presence (batched, every few seconds) is written:
    a page load counts as activity, so a test comparing turns waits for it."""
    for _ in range(200):
        row = await conversation_row(db, shop, session_id)
        if row.seen_at is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError("the page load was never written as the shopper's presence")


async def test_a_customers_conversation_follows_them_to_another_device(
    server: LiveServer, client: ProxyClient
) -> None:
    customer = new_customer_id()
    laptop = client.as_shop(client.shop, customer_id=customer)
    phone = client.as_shop(client.shop, customer_id=customer)
    on_laptop, on_phone = new_id(), new_id()
    async with laptop, phone:
        await said(laptop, on_laptop, "Do you ship to Norway?")

        own = await page(phone, on_phone)
        assert own["status"] == "unknown", "asked without customer=1: the session's own"

        followed = await page(phone, on_phone, customer="1")
        assert followed["session_id"] == on_laptop
        assert followed["status"] == "active"
        assert texts(followed) == ["Do you ship to Norway?"]

        # The phone carries on in that session: the laptop sees what it wrote.
        await said(phone, on_laptop, "And to Iceland?")
        assert texts(await page(laptop, on_laptop)) == ["Do you ship to Norway?", "And to Iceland?"]
        # The laptop's own session is its current one too.
        again = await page(laptop, on_laptop, customer="1")
        assert again["session_id"] == on_laptop


async def test_nobody_else_follows_a_customers_conversation(
    server: LiveServer, client: ProxyClient, db: Database
) -> None:
    customer = new_customer_id()
    elsewhere = client.as_shop(await make_shop(db), customer_id=customer)
    owner = client.as_shop(client.shop, customer_id=customer)
    someone = client.as_shop(client.shop, customer_id=new_customer_id())
    guest = client.as_shop(client.shop)
    theirs = new_id()
    async with owner, someone, guest, elsewhere:
        await said(owner, theirs, "Where is my order 1042?")
        for stranger, name in ((someone, "another customer"), (guest, "a guest")):
            mine = new_id()
            answer = await page(stranger, mine, customer="1")
            assert answer["session_id"] == mine, name
            assert answer["status"] == "unknown", name
            assert answer["messages"] == [], name
            # Named outright, the customer's session is refused as before.
            assert (await page(stranger, theirs, customer="1"))["status"] == "unknown", name
            refused = await stranger.send(theirs, "let me in")
            assert refused.status_code == 403, name
            assert refused.body["error"]["code"] == "session_not_yours", name
        # The same customer id at another shop is another customer.
        mine = new_id()
        answer = await page(elsewhere, mine, customer="1")
        assert (answer["session_id"], answer["status"]) == (mine, "unknown")
        assert texts(await page(owner, theirs)) == ["Where is my order 1042?"], "none added"


async def test_the_latest_active_conversation_is_the_current_one(
    server: LiveServer, client: ProxyClient, db: Database
) -> None:
    customer = new_customer_id()
    me = client.as_shop(client.shop, customer_id=customer)
    older, newer, third = new_id(), new_id(), new_id()
    async with me:
        await said(me, older, "first device")
        await said(me, newer, "second device")
        assert (await page(me, third, customer="1"))["session_id"] == newer
        # The read is the shopper's activity on `newer`, written a few seconds later; only
        # a turn after it makes `older` the latest.
        await seen_written(db, client.shop, newer)
        await said(me, older, "back on the first")
        assert (await page(me, third, customer="1"))["session_id"] == older
        # A device's own conversation stays its own while it is the latest...
        await seen_written(db, client.shop, older)
        assert (await page(me, older, customer="1"))["session_id"] == older
        # ...and gives way to a more recent one of theirs.
        await said(me, newer, "second again")
        assert (await page(me, older, customer="1"))["session_id"] == newer


async def test_ended_and_product_conversations_are_not_followed(
    server: LiveServer, client: ProxyClient
) -> None:
    customer = new_customer_id()
    me = client.as_shop(client.shop, customer_id=customer)
    ended, about_a_product = new_id(), new_id()
    async with me:
        await said(me, ended, "I'm done")
        assert (await me.post("/proxy/sessions/end", {"session_id": ended})).status_code == 200
        fresh = new_id()
        answer = await page(me, fresh, customer="1")
        assert (answer["session_id"], answer["status"]) == (fresh, "unknown")

        own = {"product": "merino-crew", "conversation": "product"}
        await said(me, about_a_product, "Does it shrink?", context=own)
        answer = await page(me, fresh, customer="1")
        assert answer["session_id"] == fresh, "a product's conversation is that product page's"
        # On the product's page, its own conversation stays its own.
        shop_chat = new_id()
        await said(me, shop_chat, "Any sales on?")
        answer = await page(me, about_a_product, customer="1")
        assert answer["session_id"] == about_a_product
        assert (await page(me, fresh, customer="1"))["session_id"] == shop_chat


@pytest.mark.parametrize(
    "value", ["2", "true", "yes", "-1", "01", "\uff11", "\u0661", " 1", "1" * 40, "null"]
)
async def test_a_customer_flag_other_than_0_or_1_is_refused(
    client: ProxyClient, value: str
) -> None:
    response = await client.history(new_id(), customer=value)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_customer"
    assert "customer" in response.json()["error"]["message"]


async def test_a_repeated_customer_flag_is_refused(client: ProxyClient) -> None:
    params: dict[str, str | list[str]] = {
        "shop": client.shop,
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": "77",
        "session_id": new_id(),
        "customer": ["1", "0"],
    }
    signature = sign_proxy_query(params, TEST_API_SECRET)  # signed as Shopify would
    query = urlencode({**params, "signature": signature}, doseq=True)
    response = await client.http.get(f"/proxy/history?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_customer"
    assert "more than once" in response.json()["error"]["message"]
