"""Direct streams: a ticket from the app proxy, the streaming endpoints on the app's own host
(/direct/...), their CORS, rate limits counted once across both paths, and the local
storefront's emulated proxy buffering or cutting a stream."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from app.config import Settings, load_settings
from app.db import Database
from app.shopify import ProxyIdentity
from app.tickets import Tickets
from tests.conftest import make_settings
from tests.factories import (
    TEST_API_SECRET,
    DirectClient,
    ProxyClient,
    make_shop,
    new_id,
)
from tests.servers import LiveServer, start_storefront_server

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _ticket_for(shop: str, session_id: str, *, customer: str | None = None, age: float = 0) -> str:
    """A ticket as the test servers issue it, made `age` seconds ago."""
    tickets = Tickets(TEST_API_SECRET, clock=lambda: time.time() - age)
    return tickets.issue(ProxyIdentity(shop=shop, customer_id=customer), session_id).ticket


# ---- the ticket -------------------------------------------------------------------------


async def test_a_ticket_is_issued_through_the_proxy(client: ProxyClient, server) -> None:
    session_id = new_id()
    response = await client.post("/proxy/sessions/ticket", {"session_id": session_id})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"ticket", "expires_in", "expires_at", "direct_url"}
    assert body["expires_in"] == 600
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert body["expires_at"].endswith("Z")
    assert 590 <= (expires - datetime.now(UTC)).total_seconds() <= 601
    assert body["direct_url"] == "http://localhost:8000/direct"  # SHOPIFY_APP_URL + /direct
    assert "access-control-allow-origin" not in response.headers


async def test_no_ticket_without_the_proxys_signature_or_for_a_shop_not_installed(
    client: ProxyClient, db: Database
) -> None:
    unsigned = await client.http.post("/proxy/sessions/ticket", json={"session_id": new_id()})
    assert unsigned.status_code == 401
    gone = await make_shop(db, installed=False)
    async with client.as_shop(gone) as other:
        refused = await other.post("/proxy/sessions/ticket", {"session_id": new_id()})
    assert refused.status_code == 403 and _code(refused) == "shop_not_installed"
    bad = await client.post("/proxy/sessions/ticket", {"session_id": "not-a-uuid"})
    assert bad.status_code == 400


def test_a_ticket_expires_after_its_lifetime() -> None:
    now = [1_800_000_000.0]
    tickets = Tickets(TEST_API_SECRET, clock=lambda: now[0])
    issued = tickets.issue(ProxyIdentity("a.myshopify.com", "42"), new_id())
    now[0] += 599
    assert tickets.read(issued.ticket).identity.customer_id == "42"
    now[0] += 2
    with pytest.raises(Exception) as expired:
        tickets.read(issued.ticket)
    assert getattr(expired.value, "code", None) == "ticket_expired"


def test_the_ticket_key_is_derived_not_the_secret() -> None:
    issued = Tickets(TEST_API_SECRET).issue(ProxyIdentity("a.myshopify.com", None), new_id())
    raw_secret = URLSafeTimedSerializer(TEST_API_SECRET, salt="chat-direct-ticket")
    with pytest.raises(Exception, match="Signature"):
        raw_secret.loads(issued.ticket)


# ---- the direct endpoints ---------------------------------------------------------------


async def test_a_direct_turn_streams_the_same_events_as_the_proxys(client: ProxyClient) -> None:
    direct = DirectClient(client)
    by_proxy = await client.send(new_id(), "Hello there")
    by_direct = await direct.send(new_id(), "Hello there")
    assert by_direct.status_code == 200
    assert [e.event for e in by_direct.events] == [e.event for e in by_proxy.events]
    assert by_direct.text == by_proxy.text
    assert by_direct.last.data["status"] == "complete"


async def test_a_direct_reply_is_saved_and_read_through_the_proxy(client: ProxyClient) -> None:
    session_id = new_id()
    turn = await DirectClient(client).send(session_id, "Do you ship?")
    history = (await client.history(session_id)).json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["content"] == turn.text


async def test_resume_directly_with_last_event_id(client: ProxyClient) -> None:
    direct = DirectClient(client)
    session_id = new_id()
    turn = await client.send(session_id, "Tell me about your shipping options please")
    reply_id = turn.first("start").data["assistant_message_id"]
    deltas = [e for e in turn.events if e.event == "delta"]
    assert len(deltas) >= 2
    middle = deltas[0]
    resumed = await direct.resume(session_id, reply_id, last_event_id=middle.id)
    assert resumed.status_code == 200
    assert middle.data["text"] + resumed.text == turn.text
    whole = await direct.resume(session_id, reply_id)
    assert whole.text == turn.text


async def test_the_ticket_travels_in_a_header_except_on_the_stream(client: ProxyClient) -> None:
    direct = DirectClient(client)
    session_id = new_id()
    ticket = await direct.ticket(session_id)
    in_url = await client.http.post(
        "/direct/messages",
        params={"ticket": ticket},
        json={"session_id": session_id, "message": "hello"},
    )
    assert in_url.status_code == 400 and _code(in_url) == "ticket_in_url"
    both = await client.http.post(
        "/direct/messages",
        params={"ticket": ticket},
        headers={"X-Chat-Ticket": ticket},
        json={"session_id": session_id, "message": "hello"},
    )
    assert both.status_code == 400 and _code(both) == "ticket_in_url"
    turn = await direct.send(session_id, "hello", ticket=ticket)
    reply_id = turn.first("start").data["assistant_message_id"]
    # EventSource cannot send a header: the stream takes the ticket in its URL.
    resumed = await direct.resume(session_id, reply_id, ticket=ticket, in_url=True)
    assert resumed.status_code == 200 and resumed.text == turn.text


async def test_tickets_that_are_missing_expired_or_not_ours_are_401(client: ProxyClient) -> None:
    direct = DirectClient(client)
    session_id = new_id()
    good = await direct.ticket(session_id)
    flipped = good[:-5] + ("A" if good[-5] != "A" else "B") + good[-4:]
    other_kind = URLSafeTimedSerializer(TEST_API_SECRET, salt="dev-merchant").dumps(client.shop)
    other_key = Tickets("another-secret-0123456789abcdef").issue(
        ProxyIdentity(client.shop, None), session_id
    )
    cases = {
        "ticket_missing": [None, ""],
        "ticket_expired": [_ticket_for(client.shop, session_id, age=601)],
        "ticket_invalid": [
            flipped,
            good + "x",
            "garbage",
            "x" * 5000,
            "é".encode().decode("latin-1") * 10,
            other_kind,
            other_key.ticket,
            ".".join(good.split(".")[:2]),
        ],
    }
    body = {"session_id": session_id, "message": "hello"}
    for code, tickets in cases.items():
        for ticket in tickets:
            headers = {} if ticket is None else {"X-Chat-Ticket": ticket.encode("latin-1")}
            post = await client.http.post("/direct/messages", json=body, headers=headers)
            assert post.status_code == 401, (ticket, post.text)
            assert _code(post) == code, (ticket, post.text)
            assert post.headers["access-control-allow-origin"] == "*"
            resumed = await client.http.get(
                f"/direct/messages/{new_id()}/stream",
                params={"session_id": session_id},
                headers=headers,
            )
            assert resumed.status_code == 401 and _code(resumed) == code
    # The same for an expired ticket in the URL of the stream.
    in_url = await client.http.get(
        f"/direct/messages/{new_id()}/stream",
        params={"session_id": session_id, "ticket": cases["ticket_expired"][0]},
    )
    assert in_url.status_code == 401 and _code(in_url) == "ticket_expired"


async def test_another_sessions_ticket_is_refused(client: ProxyClient) -> None:
    direct = DirectClient(client)
    mine, other = new_id(), new_id()
    turn = await direct.send(mine, "hello")
    reply_id = turn.first("start").data["assistant_message_id"]
    others_ticket = await direct.ticket(other)
    sent = await direct.send(mine, "let me in", ticket=others_ticket)
    assert sent.status_code == 401 and sent.body["error"]["code"] == "ticket_not_for_session"
    resumed = await direct.resume(mine, reply_id, ticket=others_ticket)
    assert resumed.status_code == 401
    assert resumed.body["error"]["code"] == "ticket_not_for_session"


async def test_a_ticket_of_a_shop_uninstalled_since_is_403(client: ProxyClient, db) -> None:
    gone = await make_shop(db, installed=False)
    session_id = new_id()
    turn = await DirectClient(client).send(
        session_id, "hello", ticket=_ticket_for(gone, session_id)
    )
    assert turn.status_code == 403 and turn.body["error"]["code"] == "shop_not_installed"


async def test_a_customers_ticket_carries_the_customer(server, db: Database) -> None:
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(server.url, shop, customer_id="1001") as alice:
        assert (await DirectClient(alice).send(session_id, "my order?")).status_code == 200
    async with ProxyClient(server.url, shop, customer_id="2002") as bob:
        refused = await DirectClient(bob).send(session_id, "let me in")
        assert refused.status_code == 403
        assert refused.body["error"]["code"] == "session_not_yours"
    async with ProxyClient(server.url, shop, customer_id="1001") as alice:
        assert len((await alice.history(session_id)).json()["messages"]) == 2


# ---- CORS -------------------------------------------------------------------------------


async def test_cors_on_the_direct_routes_only(client: ProxyClient, server: LiveServer) -> None:
    origin = {"Origin": "https://some-theme.example", "Access-Control-Request-Method": "POST"}
    for path in ("/direct/messages", f"/direct/messages/{new_id()}/stream"):
        preflight = await client.http.options(
            path, headers={**origin, "Access-Control-Request-Headers": "content-type"}
        )
        assert preflight.status_code == 204
        headers = preflight.headers
        assert headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in headers
        assert set(headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
        assert {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")} == {
            "content-type",
            "x-chat-ticket",
            "last-event-id",
        }
        assert int(headers["access-control-max-age"]) > 0
    session_id = new_id()
    ticket = await DirectClient(client).ticket(session_id)
    async with client.http.stream(
        "POST",
        "/direct/messages",
        json={"session_id": session_id, "message": "hello"},
        headers={"X-Chat-Ticket": ticket, "Origin": "https://some-theme.example"},
    ) as response:
        await response.aread()
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "Retry-After"
    assert "access-control-allow-credentials" not in response.headers
    assert "set-cookie" not in response.headers

    elsewhere = [
        await client.http.options("/proxy/messages", headers=origin),
        await client.get("/proxy/sessions/status", {"session_id": session_id}),
        await client.http.get("/api/admin/settings", headers={"Origin": "https://x.example"}),
        await client.http.options("/api/admin/settings", headers=origin),
        await client.http.get("/healthz", headers={"Origin": "https://x.example"}),
    ]
    for answer in elsewhere:
        assert not any(h.startswith("access-control-") for h in answer.headers), answer.url


# ---- rate limits ------------------------------------------------------------------------


@pytest.fixture(params=["database", "redis"])
def counted_in(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_turn_retried_the_other_way_counts_once(
    start_server, db: Database, counted_in: str
) -> None:
    limited = start_server(
        rate_limit_session=2, redis_url=REDIS_URL if counted_in == "redis" else ""
    )
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(limited.url, shop) as proxy:
        direct = DirectClient(proxy)
        first, second = new_id(), new_id()
        assert (await proxy.send(session_id, "one", first)).status_code == 200
        # The same turn again directly, and back through the proxy: still one turn.
        assert (await direct.send(session_id, "one", first)).status_code == 200
        assert (await proxy.send(session_id, "one", first)).status_code == 200
        assert (await direct.send(session_id, "two", second)).status_code == 200
        assert (await proxy.send(session_id, "two", second)).status_code == 200
        third = await direct.send(session_id, "three", new_id())
        assert third.status_code == 429, "two turns in the session's bucket, not five"
        again = await proxy.send(session_id, "three", new_id())
        assert again.status_code == 429


async def test_a_direct_turn_counts_the_shoppers_own_address(start_server, db: Database) -> None:
    # Behind one load balancer (PROXY_HOPS=2) the proxy's shopper is the second entry from the
    # right; a direct request's is the first: the address the balancer saw.
    limited = start_server(rate_limit_ip=1, proxy_hops=2)
    shop = await make_shop(db)
    async with ProxyClient(limited.url, shop) as proxy:
        direct = DirectClient(proxy)
        session_id = new_id()
        forged = {"X-Forwarded-For": "198.51.100.7, 203.0.113.50"}
        assert (await direct.send(session_id, "hi", headers=forged)).status_code == 200
        same = await direct.send(session_id, "hi", headers={"X-Forwarded-For": "203.0.113.50"})
        assert same.status_code == 429, "the forged entry on the left is not the shopper"
        other = await direct.send(session_id, "hi", headers={"X-Forwarded-For": "203.0.113.51"})
        assert other.status_code == 200


def test_direct_hops_are_one_fewer_than_the_proxys() -> None:
    assert Settings(proxy_hops=1).direct_hops == 0
    assert Settings(proxy_hops=3).direct_hops == 2
    assert Settings(proxy_hops=2, direct_proxy_hops=2).direct_hops == 2
    env = {"APP_ENV": "development", "PROXY_HOPS": "2"}
    assert load_settings(env).direct_hops == 1
    assert load_settings({**env, "DIRECT_PROXY_HOPS": "0"}).direct_hops == 0
    assert load_settings({**env, "DIRECT_STREAMS": "always"}).direct_streams == "always"
    assert load_settings(env).direct_streams == "auto"


# ---- the local storefront's emulated proxy ----------------------------------------------


@pytest.fixture
def storefront(database_url: str):  # type: ignore[no-untyped-def]
    live = start_storefront_server(make_settings(database_url, offline_word_delay=0.05))
    yield live
    live.stop()


async def _arrivals(url: str, session_id: str) -> tuple[list[float], bytes]:
    """When each piece of a turn's reply through /apps/chat arrived, and all of it."""
    pieces: list[float] = []
    body = b""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async with http.stream(
            "POST",
            "/apps/chat/messages",
            json={"session_id": session_id, "message": "What is your refund policy?"},
        ) as response:
            assert response.status_code == 200
            started = time.monotonic()
            async for chunk in response.aiter_raw():
                pieces.append(time.monotonic() - started)
                body += chunk
    return pieces, body


async def test_the_emulated_proxy_can_buffer_or_cut_a_stream(storefront: LiveServer) -> None:
    emulator = storefront.app.state.proxy_emulator
    passed, whole = await _arrivals(storefront.url, new_id())
    assert len(passed) > 3 and passed[-1] - passed[0] > 0.2, "streamed as it was written"
    assert b"event: done" in whole

    emulator.buffering = True
    try:
        held, body = await _arrivals(storefront.url, new_id())
    finally:
        emulator.buffering = False
    assert len(held) == 1, "a buffering proxy passes the reply on in one piece"
    assert b"event: start" in body and b"event: done" in body

    emulator.cut_after = 0.3
    try:
        cut, body = await _arrivals(storefront.url, new_id())
    finally:
        emulator.cut_after = 0.0
    assert b"event: start" in body and b"event: delta" in body
    assert b"event: done" not in body, "the response ended mid-stream"
    assert cut[-1] < 2


async def test_the_local_storefront_tells_the_widget_where_to_stream(
    storefront: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=storefront.url) as http:
        page = (await http.get("/storefront")).text
    assert f'data-direct-url="{storefront.url}/direct"' in page
    assert 'data-direct-mode="auto"' in page


def test_emulator_switches_come_from_the_environment() -> None:
    env = {"APP_ENV": "development", "DEV_PROXY_BUFFERING": "1", "DEV_PROXY_CUT_AFTER": "30"}
    settings = load_settings(env)
    assert settings.dev_proxy_buffering is True and settings.dev_proxy_cut_after == 30
