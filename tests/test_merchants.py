"""Shop tokens over time: one refresh at a time across workers, recovery when a refresh is
refused or a key was rotated away, and storefront settings kept in step with Shopify."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.pool import NullPool

from app import repo
from app.crypto import TokenCipher
from app.db import Database
from app.models import utcnow
from app.shop_tokens import TokenRevoked, access_token
from app.shopify import Shopify
from app.state import AppState
from tests.factories import (
    TEST_API_KEY,
    TEST_API_SECRET,
    AdminClient,
    new_shop_domain,
    server_cipher,
)
from tests.fake_shopify import FakeShopify
from tests.servers import LiveServer


async def _installed(
    db: Database, fake: FakeShopify, *, expires_in: float, cipher: TokenCipher | None = None
) -> tuple[str, str]:
    """A shop installed with tokens the fake admin issued; returns it and its access token."""
    shop = new_shop_domain()
    grant = fake._grant(shop)
    cipher = cipher or server_cipher()
    async with db.session() as session:
        await repo.store_tokens(
            session,
            domain=shop,
            access_token=cipher.encrypt(grant["access_token"]) or "",
            refresh_token=cipher.encrypt(grant["refresh_token"]),
            access_token_expires_at=utcnow() + timedelta(seconds=expires_in),
            refresh_token_expires_at=utcnow() + timedelta(days=90),
            scopes="read_products",
        )
    return shop, grant["access_token"]


@pytest.fixture
async def workers(
    database_url: str, admin: tuple[FakeShopify, LiveServer]
) -> AsyncIterator[list[AppState]]:
    """Three workers: each its own connections and its own Shopify client."""
    states = []
    for _ in range(3):
        shopify = Shopify(
            api_key=TEST_API_KEY, api_secret=TEST_API_SECRET, admin_base_url=admin[1].url
        )
        database = Database(database_url, poolclass=NullPool)
        states.append(
            cast(AppState, SimpleNamespace(db=database, shopify=shopify, tokens=server_cipher()))
        )
    yield states
    for state in states:
        await state.shopify.aclose()
        await state.db.dispose()


async def _shop(db: Database, domain: str) -> repo.Shop:
    async with db.session() as session:
        shop = await repo.get_shop(session, domain=domain)
    assert shop is not None
    return shop


async def test_workers_refreshing_at_once_refresh_once(
    db: Database, fake: FakeShopify, workers: list[AppState]
) -> None:
    """Shopify rotates the refresh token on use: two refreshes at once would leave one
    worker with a refused token, and (before) the shop without a working one."""
    shop, first = await _installed(db, fake, expires_in=30)
    stored = await _shop(db, shop)
    tokens = await asyncio.gather(*(access_token(state, stored) for state in workers * 2))
    refreshes = [r for r in fake.requests if r.get("body", {}).get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1
    assert len(set(tokens)) == 1 and tokens[0] != first and tokens[0] in fake.tokens
    after = await _shop(db, shop)
    assert after.token_refresh_until is None, "the lease is given back"
    assert server_cipher().decrypt(after.access_token) == tokens[0]


async def test_a_refused_refresh_drops_the_tokens_and_the_next_visit_exchanges_new_ones(
    db: Database, fake: FakeShopify, workers: list[AppState], start_server, admin
) -> None:
    shop, _ = await _installed(db, fake, expires_in=30)
    fake.refresh_tokens.clear()  # revoked, or expired at Shopify's end
    with pytest.raises(TokenRevoked):
        await access_token(workers[0], await _shop(db, shop))
    dropped = await _shop(db, shop)
    assert dropped.installed and dropped.access_token is None and dropped.refresh_token is None
    server = start_server(shopify_admin_base_url=admin[1].url)
    async with AdminClient(server.url, shop) as merchant:
        response = await merchant.get("/api/admin/conversations")
    assert response.status_code == 200
    exchange = [
        r
        for r in fake.requests
        if r.get("body", {}).get("grant_type", "").endswith("token-exchange")
    ]
    assert len(exchange) == 1 and exchange[0]["shop"] == shop
    recovered = await _shop(db, shop)
    assert server_cipher().decrypt(recovered.access_token) in fake.tokens


async def test_tokens_under_a_rotated_key_are_read_with_the_old_one_and_recovered_without_it(
    db: Database, fake: FakeShopify, start_server, admin
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    shop, token = await _installed(db, fake, expires_in=3600, cipher=TokenCipher(old))
    rotated = start_server(shopify_admin_base_url=admin[1].url, token_encryption_key=f"{new},{old}")
    async with AdminClient(rotated.url, shop) as merchant:
        saved = await merchant.put("/api/admin/settings", {"greeting": "Hello again"})
    assert saved.status_code == 200 and saved.json()["storefront_synced"] is True
    assert not [r for r in fake.requests if r["path"] == "access_token"], "no exchange needed"
    assert {r["token"] for r in fake.requests if r["path"] == "graphql"} == {token}
    assert TokenCipher(new).decrypt((await _shop(db, shop)).access_token) is None

    dropped_old = start_server(shopify_admin_base_url=admin[1].url, token_encryption_key=new)
    async with AdminClient(dropped_old.url, shop) as merchant:
        response = await merchant.get("/api/admin/settings")
    assert response.status_code == 200, "recovered by token exchange, not a broken shop"
    assert TokenCipher(new).decrypt((await _shop(db, shop)).access_token) in fake.tokens


async def test_clearing_the_greeting_clears_the_storefront_metafield(
    db: Database, fake: FakeShopify, start_server, admin
) -> None:
    shop, _ = await _installed(db, fake, expires_in=3600)
    server = start_server(shopify_admin_base_url=admin[1].url)
    async with AdminClient(server.url, shop) as merchant:
        await merchant.put("/api/admin/settings", {"greeting": "Hi!", "accent_color": "#112233"})
        # The app's host and the direct-streams mode go along (app/storefront_settings.py).
        direct = {"app_url": "http://localhost:8000", "direct_streams": "auto"}
        assert fake.metafields[shop] == {"greeting": "Hi!", "accent_color": "#112233", **direct}
        cleared = await merchant.put("/api/admin/settings", {"greeting": None})
        assert fake.metafields[shop] == {"accent_color": "#112233", **direct}
        chosen = await merchant.put("/api/admin/settings", {"direct_streams": "always"})
        assert chosen.json()["direct_streams"] == "always"
        assert fake.metafields[shop]["direct_streams"] == "always"
        refused = await merchant.put("/api/admin/settings", {"direct_streams": "sometimes"})
        assert refused.status_code == 400
        back = await merchant.put("/api/admin/settings", {"direct_streams": None})
        assert back.json()["direct_streams"] is None
        assert back.json()["defaults"]["direct_streams"] == "auto"
        assert fake.metafields[shop]["direct_streams"] == "auto"
    assert cleared.json()["storefront_synced"] is True
