"""POST /webhooks: verification, deduplication, uninstall and Shopify's privacy topics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from app import repo
from app.db import Database
from app.models import Conversation, WebhookEvent
from tests.factories import (
    TEST_API_SECRET,
    AdminClient,
    ProxyClient,
    make_shop,
    messages_of,
    new_id,
    server_cipher,
    shop_id_of,
)
from tests.servers import LiveServer


def _signed(body: bytes, secret: str = TEST_API_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def send_webhook(
    server: LiveServer,
    topic: str,
    shop: str,
    payload: dict[str, Any],
    *,
    webhook_id: str | None = None,
    signature: str | None = None,
    header_shop: str | None = None,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop if header_shop is None else header_shop,
        "X-Shopify-Webhook-Id": webhook_id or new_id(),
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Hmac-Sha256": _signed(body) if signature is None else signature,
    }
    if signature == "":
        del headers["X-Shopify-Hmac-Sha256"]
    if header_shop == "":
        del headers["X-Shopify-Shop-Domain"]
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.post("/webhooks", content=body, headers=headers)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the webhook was not applied"
        await asyncio.sleep(0.05)


async def _conversation(server: LiveServer, shop: str, customer: str | None) -> str:
    session_id = new_id()
    async with ProxyClient(server.url, shop, customer_id=customer) as storefront:
        turn = await storefront.send(session_id, f"question from {customer or 'a guest'}")
    assert turn.status_code == 200
    return session_id


async def test_uninstall_drops_tokens_and_the_proxy_refuses_the_shop(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    session_id = await _conversation(server, shop, None)
    response = await send_webhook(
        server, "app/uninstalled", shop, {"id": 1, "name": "Shop", "myshopify_domain": shop}
    )
    assert response.status_code == 200

    async def uninstalled() -> bool:
        async with db.session() as session:
            stored = await repo.get_shop(session, domain=shop)
        return stored is not None and not stored.installed

    await eventually(uninstalled)
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
    assert stored.access_token is None and stored.refresh_token is None
    async with ProxyClient(server.url, shop) as storefront:
        assert (await storefront.send(new_id(), "hello")).status_code == 403
    assert len(await messages_of(db, shop, session_id)) == 2, "kept until shop/redact"


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", "other-secret"])
async def test_bad_or_missing_signature_is_401(
    server: LiveServer, db: Database, signature: str
) -> None:
    shop = await make_shop(db)
    body = json.dumps({"myshopify_domain": shop}).encode()
    if signature == "other-secret":
        signature = _signed(body, "not-the-app-secret-at-all-0123456789")
    response = await send_webhook(
        server, "app/uninstalled", shop, {"myshopify_domain": shop}, signature=signature
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("missing_hmac", "invalid_hmac")
    async with db.session() as session:
        assert (await repo.get_shop(session, domain=shop)).installed


async def test_a_signed_body_cannot_be_replayed_for_another_shop(
    server: LiveServer, db: Database
) -> None:
    victim, attacker = await make_shop(db), await make_shop(db)
    response = await send_webhook(
        server, "shop/redact", attacker, {"shop_domain": attacker}, header_shop=victim
    )
    assert response.status_code == 401
    async with db.session() as session:
        assert await repo.get_shop(session, domain=victim) is not None


async def test_retries_are_deduplicated(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    webhook_id = new_id()
    payload = {
        "shop_domain": shop,
        "customer": {"id": 555, "email": "a@example.com"},
        "data_request": {"id": 9},
    }
    first = await send_webhook(
        server, "customers/data_request", shop, payload, webhook_id=webhook_id
    )
    again = await send_webhook(
        server, "customers/data_request", shop, payload, webhook_id=webhook_id
    )
    assert first.json() == {"status": "accepted"}
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    async with AdminClient(server.url, shop) as merchant:

        async def recorded() -> bool:
            rows = (await merchant.get("/api/admin/data-requests")).json()["data_requests"]
            return len(rows) > 0

        await eventually(recorded)
        rows = (await merchant.get("/api/admin/data-requests")).json()["data_requests"]
    assert rows == [
        {
            "customer_id": "555",
            "customer_email": "a@example.com",
            "request_id": "9",
            "created_at": rows[0]["created_at"],
        }
    ]


async def test_data_request_makes_the_customers_conversations_exportable(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    await _conversation(server, shop, "777")
    await _conversation(server, shop, "888")
    await send_webhook(
        server,
        "customers/data_request",
        shop,
        {"shop_domain": shop, "customer": {"id": 777}, "data_request": {"id": 1}},
    )
    async with AdminClient(server.url, shop) as merchant:
        export = await merchant.get("/api/admin/export", format="jsonl", customer_id="777")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [c["customer_id"] for c in lines] == ["777"]
    assert lines[0]["messages"][0]["content"] == "question from 777"


async def test_customer_redact_deletes_only_that_customer(server: LiveServer, db: Database) -> None:
    shop, other_shop = await make_shop(db), await make_shop(db)
    theirs = await _conversation(server, shop, "4242")
    kept = await _conversation(server, shop, "1111")
    guest = await _conversation(server, shop, None)
    same_id_elsewhere = await _conversation(server, other_shop, "4242")
    response = await send_webhook(
        server,
        "customers/redact",
        shop,
        {
            "shop_id": 1,
            "shop_domain": shop,
            "customer": {"id": 4242, "email": "x@example.com"},
            "orders_to_redact": [],
        },
    )
    assert response.status_code == 200

    async def redacted() -> bool:
        return await messages_of(db, shop, theirs) == []

    await eventually(redacted)
    assert len(await messages_of(db, shop, kept)) == 2
    assert len(await messages_of(db, shop, guest)) == 2
    assert len(await messages_of(db, other_shop, same_id_elsewhere)) == 2


async def test_shop_redact_deletes_everything_of_the_shop(server: LiveServer, db: Database) -> None:
    shop, other_shop = await make_shop(db), await make_shop(db)
    session_id = await _conversation(server, shop, "1")
    other = await _conversation(server, other_shop, "1")
    async with db.session() as session:
        await repo.uninstall_shop(session, domain=shop)  # Shopify sends it 48 h after that
    response = await send_webhook(server, "shop/redact", shop, {"shop_id": 1, "shop_domain": shop})
    assert response.status_code == 200

    async def gone() -> bool:
        async with db.session() as session:
            return await repo.get_shop(session, domain=shop) is None

    await eventually(gone)
    assert await messages_of(db, shop, session_id) == []
    async with db.session() as session:
        import sqlalchemy as sa

        orphans = await session.execute(
            sa.select(sa.func.count())
            .select_from(Conversation)
            .where(
                Conversation.session_id == session_id  # type: ignore[arg-type]
            )
        )
        assert orphans.scalar_one() == 0
    assert len(await messages_of(db, other_shop, other)) == 2


async def test_unknown_topic_is_acknowledged_and_ignored(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    response = await send_webhook(server, "orders/create", shop, {"id": 1})
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}


async def test_shop_redact_leaves_a_shop_that_reinstalled_alone(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    session_id = await _conversation(server, shop, None)
    async with db.session() as session:
        await repo.uninstall_shop(session, domain=shop)
        await repo.install_shop(session, domain=shop)  # back within the 48 hours
    response = await send_webhook(server, "shop/redact", shop, {"shop_id": 1, "shop_domain": shop})
    assert response.json() == {"status": "accepted"}
    await _until_applied(db, response)
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
    assert stored is not None and stored.installed
    assert len(await messages_of(db, shop, session_id)) == 2


async def _until_applied(db: Database, response: httpx.Response) -> None:
    """Wait until the webhook just accepted has been applied (or judged nothing to do)."""

    webhook_id = response.request.headers["X-Shopify-Webhook-Id"]

    async def applied() -> bool:
        async with db.session() as session:
            pending = await session.execute(
                sa.select(sa.func.count())
                .select_from(WebhookEvent)
                .where(
                    col(WebhookEvent.webhook_id) == webhook_id,
                    col(WebhookEvent.processed_at).is_(None),
                )
            )
            return int(pending.scalar_one()) == 0

    assert response.status_code == 200
    await eventually(applied)


# A signed body can be re-sent with any headers: each of these was captured from one topic
# (or made up) and sent as another. Nothing in the headers may change what a body means.
REPLAYS = [
    # A customers/redact body sent as app/uninstalled: no myshopify_domain.
    ("app/uninstalled", lambda shop: {"shop_domain": shop, "customer": {"id": 1}}),
    # An app/uninstalled body (the shop resource) sent as shop/redact: no shop_domain.
    ("shop/redact", lambda shop: {"id": 1, "myshopify_domain": shop, "domain": shop}),
    # A customers/redact body sent as shop/redact: it names a customer.
    ("shop/redact", lambda shop: {"shop_domain": shop, "customer": {"id": 1}}),
    # A shop/redact body sent as customers/redact or data_request: no customer.
    ("customers/redact", lambda shop: {"shop_id": 1, "shop_domain": shop}),
    ("customers/data_request", lambda shop: {"shop_id": 1, "shop_domain": shop}),
    # The signed `{}` that deleted a shop named only in the unsigned header.
    ("shop/redact", lambda shop: {}),
    ("app/uninstalled", lambda shop: {}),
    ("customers/redact", lambda shop: {"shop_domain": shop, "customer": {"name": "no id"}}),
    ("customers/redact", lambda shop: {"shop_domain": "evil.example.com", "customer": {"id": 1}}),
]


@pytest.mark.parametrize("topic,body", REPLAYS)
async def test_a_body_is_applied_only_as_the_topic_it_has_the_shape_of(
    server: LiveServer, db: Database, topic: str, body: Callable[[str], dict[str, Any]]
) -> None:
    shop = await make_shop(db)
    session_id = await _conversation(server, shop, "1")
    response = await send_webhook(server, topic, shop, body(shop))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_payload"
    assert topic in response.json()["error"]["message"]
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
        events = await session.execute(sa.select(sa.func.count()).select_from(WebhookEvent))
    assert stored is not None and stored.installed and stored.access_token
    assert len(await messages_of(db, shop, session_id)) == 2
    assert events.scalar_one() >= 0


async def test_a_replayed_body_with_a_new_id_is_a_duplicate(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    payload = {"shop_domain": shop, "customer": {"id": 321}, "data_request": {"id": 5}}
    first = await send_webhook(server, "customers/data_request", shop, payload)
    again = await send_webhook(server, "customers/data_request", shop, payload)
    assert first.json() == {"status": "accepted"}
    assert again.json() == {"status": "duplicate"}, "the id is unsigned; the body is not"
    await _until_applied(db, first)
    async with db.session() as session:
        requests = await repo.list_data_requests(session, shop_id=await shop_id_of(db, shop))
    assert len(requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"x"',
        b"null",
        b"12",
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 40 + b"1" + b"}" * 40,
        b'{"shop_domain": 1' + b"0" * 5000 + b"}",
        b"{not json",
        '{"é": 1}'.encode("latin-1"),
    ],
    ids=[
        "list",
        "string",
        "null",
        "number",
        "deep-list",
        "deep-object",
        "huge-number",
        "broken",
        "latin-1",
    ],
)
async def test_signed_bodies_that_are_not_json_objects_are_refused(
    server: LiveServer, body: bytes
) -> None:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "customers/redact",
        "X-Shopify-Webhook-Id": new_id(),
        "X-Shopify-Hmac-Sha256": _signed(body),
    }
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/webhooks", content=body, headers=headers)
        assert response.status_code in (400, 401), response.text
        assert response.json()["error"]["code"] in ("invalid_payload", "invalid_hmac")
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "header,value,code",
    [
        ("X-Shopify-Topic", "customers/" + "x" * 200, "invalid_topic"),
        ("X-Shopify-Topic", "customers/re dact", "invalid_topic"),
        ("X-Shopify-Webhook-Id", "w" * 101, "invalid_webhook_id"),
        ("X-Shopify-Webhook-Id", "id with spaces", "invalid_webhook_id"),
        ("X-Shopify-Webhook-Id", "ïd", "invalid_webhook_id"),
        ("X-Shopify-Hmac-Sha256", "ÿ" * 44, "invalid_hmac"),
    ],
)
async def test_headers_that_do_not_fit_are_refused(
    server: LiveServer, db: Database, header: str, value: str, code: str
) -> None:
    shop = await make_shop(db)
    body = json.dumps({"shop_domain": shop, "customer": {"id": 1}}).encode()
    headers = {
        "X-Shopify-Topic": "customers/redact",
        "X-Shopify-Webhook-Id": new_id(),
        "X-Shopify-Hmac-Sha256": _signed(body),
        header: value,
    }
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(
            "/webhooks",
            content=body,
            headers={k: v.encode("latin-1") for k, v in headers.items()},  # type: ignore[misc]
        )
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"]["code"] == code


async def test_an_oversized_body_is_refused_before_it_is_read(server: LiveServer) -> None:
    """The declared length is enough to say no: the worker never holds the body."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 314572800\r\nX-Shopify-Topic: shop/redact\r\n\r\n{"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 413")
    writer.close()


async def test_an_undeclared_oversized_body_stops_being_read_at_the_cap(server: LiveServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):  # 64 MiB if it were all read
            yield b"x" * (1024 * 1024)

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post(
            "/webhooks", content=chunks(), headers={"X-Shopify-Topic": "shop/redact"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_missing_topic_or_id_is_400(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    body = json.dumps({"myshopify_domain": shop}).encode()
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(
            "/webhooks",
            content=body,
            headers={
                "X-Shopify-Hmac-Sha256": _signed(body),
                "X-Shopify-Shop-Domain": shop,
                "X-Shopify-Webhook-Id": new_id(),
            },
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_topic"


async def test_token_is_not_kept_in_clear(db: Database) -> None:
    shop = await make_shop(db, access_token="shpat_secret_value")
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
    assert "shpat_secret_value" not in (stored.access_token or "")
    assert server_cipher().decrypt(stored.access_token) == "shpat_secret_value"


def test_app_config_subscribes_to_exactly_the_handled_topics() -> None:
    import tomllib
    from pathlib import Path

    from app.deliveries import TOPICS

    config = tomllib.loads((Path(__file__).parent.parent / "shopify.app.toml").read_text())
    subscribed = set()
    for subscription in config["webhooks"]["subscriptions"]:
        assert subscription["uri"] == "/webhooks"
        subscribed |= set(subscription.get("topics", []))
        subscribed |= set(subscription.get("compliance_topics", []))
    assert subscribed == set(TOPICS)
    assert config["app_proxy"]["prefix"] == "apps" and config["app_proxy"]["subpath"] == "chat"
    assert config["app_proxy"]["url"].endswith("/proxy")
