"""Install by OAuth, token exchange and refresh, end to end against a fake Shopify admin."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from app import repo
from app.db import Database
from app.models import Shop, aware, utcnow
from app.shopify import Shopify, ShopifyAuthError, verify_oauth_query
from tests.factories import (
    TEST_API_KEY,
    AdminClient,
    ProxyClient,
    make_shop,
    new_id,
    new_shop_domain,
    server_cipher,
)
from tests.fake_shopify import FakeShopify, signed_oauth_query
from tests.servers import LiveServer
from tests.test_webhooks import eventually

APP_URL = "https://chat.example.com"


@pytest.fixture
def app_server(start_server, admin: tuple[FakeShopify, LiveServer]) -> LiveServer:
    return start_server(
        shopify_admin_base_url=admin[1].url, scopes="read_products", shopify_app_url=APP_URL
    )


async def _install(app_server: LiveServer, admin_url: str, shop: str) -> httpx.Response:
    """What a merchant's browser does: open the install link, approve, come back."""
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        started = await browser.get("/auth?" + signed_oauth_query({"shop": shop}))
        assert started.status_code == 302, started.text
        consent = httpx.URL(started.headers["location"])
        async with httpx.AsyncClient() as shopify:
            approved = await shopify.get(
                f"{admin_url}/admin/oauth/authorize",
                params=dict(consent.params),
                headers={"Host": shop},
            )
        back = httpx.URL(approved.headers["location"])
        assert str(back).startswith(f"{APP_URL}/auth/callback?")
        return await browser.get("/auth/callback?" + back.query.decode())


async def test_install_end_to_end(
    app_server: LiveServer,
    admin: tuple[FakeShopify, LiveServer],
    fake: FakeShopify,
    db: Database,
) -> None:
    shop = new_shop_domain()
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        started = await browser.get("/auth?" + signed_oauth_query({"shop": shop}))
    assert started.status_code == 302
    consent = httpx.URL(started.headers["location"])
    assert (consent.scheme, consent.host, consent.path) == ("https", shop, "/admin/oauth/authorize")
    assert consent.params["client_id"] == TEST_API_KEY
    assert consent.params["scope"] == "read_products"
    assert consent.params["redirect_uri"] == f"{APP_URL}/auth/callback"
    assert len(consent.params["state"]) >= 24
    cookie = started.headers["set-cookie"]
    assert (
        "scw_oauth_state=" in cookie
        and "HttpOnly" in cookie
        and consent.params["state"] not in cookie
    )

    finished = await _install(app_server, admin[1].url, shop)

    assert finished.status_code == 302
    assert finished.headers["location"] == f"https://{shop}/admin/apps/{TEST_API_KEY}"
    exchange = next(r for r in fake.requests if r["path"] == "access_token" and r["shop"] == shop)
    assert exchange["body"]["expiring"] == 1, "an expiring offline token is asked for"
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
    assert stored is not None and stored.installed
    token = server_cipher().decrypt(stored.access_token)
    assert token in fake.tokens and fake.tokens[token] == shop
    assert not stored.access_token.startswith("shpat_"), "encrypted at rest"
    assert stored.refresh_token and not stored.refresh_token.startswith("shprt_")
    assert stored.access_token_expires_at is not None
    assert abs(aware(stored.access_token_expires_at) - (utcnow() + timedelta(days=1))) < timedelta(
        minutes=5
    )
    async with ProxyClient(app_server.url, shop) as storefront:
        turn = await storefront.send(new_id(), "hello")
    assert turn.status_code == 200, "the installed shop can chat"


@pytest.mark.parametrize("change", ["hmac", "missing_hmac", "shop", "domain", "stale"])
async def test_install_link_is_verified(app_server: LiveServer, change: str) -> None:
    shop = new_shop_domain()
    params = {"shop": shop}
    if change == "stale":
        params["timestamp"] = "1000000000"
    query = signed_oauth_query(params)
    if change == "hmac":
        query = query[:-1] + ("0" if query[-1] != "0" else "1")
    elif change == "missing_hmac":
        query = query.split("&hmac=")[0]
    elif change == "shop":
        query = query.replace(shop, new_shop_domain())
    elif change == "domain":
        query = signed_oauth_query({"shop": "evil.example.com"})
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        response = await browser.get("/auth?" + query)
    assert response.status_code == (400 if change == "domain" else 401)
    assert response.json()["error"]["code"] in ("invalid_hmac", "invalid_shop", "stale_request")
    assert "location" not in response.headers


async def test_the_install_state_is_good_once(
    app_server: LiveServer, admin: tuple[FakeShopify, LiveServer], fake: FakeShopify
) -> None:
    shop = new_shop_domain()
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        started = await browser.get("/auth?" + signed_oauth_query({"shop": shop}))
        cookie = browser.cookies["scw_oauth_state"]
        state = httpx.URL(started.headers["location"]).params["state"]
        fake.codes["first-code"] = shop
        first = await browser.get(
            "/auth/callback?"
            + signed_oauth_query({"shop": shop, "code": "first-code", "state": state})
        )
        assert first.status_code == 302
    # The same cookie and state again, within their ten minutes (a leaked or replayed link).
    async with httpx.AsyncClient(
        base_url=app_server.url, cookies={"scw_oauth_state": cookie}
    ) as replay:
        fake.codes["second-code"] = shop
        again = await replay.get(
            "/auth/callback?"
            + signed_oauth_query({"shop": shop, "code": "second-code", "state": state})
        )
    assert again.status_code == 403
    assert again.json()["error"]["code"] == "state_used"
    assert "second-code" in fake.codes, "the second code was never exchanged"


@pytest.mark.parametrize("path", ["/", "/auth", "/auth/callback"])
@pytest.mark.parametrize("received", ["é", "²" * 64, "g" * 64, "0" * 63])
async def test_an_hmac_that_is_not_hex_is_401(
    app_server: LiveServer, path: str, received: str
) -> None:
    # A non-ASCII one reached hmac.compare_digest, which raises TypeError on it: a 500.
    query = urlencode(
        {"shop": new_shop_domain(), "timestamp": str(int(time.time())), "hmac": received}
    )
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        response = await browser.get(f"{path}?{query}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_hmac"


@pytest.mark.parametrize("timestamp", ["²", "１７００000000", "9" * 5000, "-1"])
async def test_a_signed_timestamp_that_is_not_a_number_is_401(
    app_server: LiveServer, timestamp: str
) -> None:
    query = signed_oauth_query({"shop": new_shop_domain(), "timestamp": timestamp})
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        response = await browser.get(f"/auth?{query}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "stale_request"


async def test_a_state_of_any_characters_is_compared_not_a_500(app_server: LiveServer) -> None:
    shop = new_shop_domain()
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        await browser.get("/auth?" + signed_oauth_query({"shop": shop}))
        response = await browser.get(
            "/auth/callback?" + signed_oauth_query({"shop": shop, "code": "c", "state": "é"})
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_state"


async def test_session_token_page_names_only_the_shop_it_was_asked_for(
    server: LiveServer,
) -> None:
    shop = new_shop_domain()
    async with httpx.AsyncClient(base_url=server.url) as browser:
        response = await browser.get(
            "/auth/session-token", params={"shop": shop, "shopify-reload": "/?shop=" + shop}
        )
    assert response.status_code == 200
    assert 'src="https://cdn.shopify.com/shopifycloud/app-bridge.js"' in response.text
    assert response.headers["content-security-policy"] == (
        f"frame-ancestors https://{shop} https://admin.shopify.com"
    )


@pytest.mark.parametrize(
    "params,code",
    [
        # A CR/LF went into the Content-Security-Policy header: the response broke (a 500).
        ({"shop": "{shop}\r\nSet-Cookie: a=b"}, "invalid_shop"),
        ({"shop": "{shop}\n"}, "invalid_shop"),
        ({"shop": "evil.example.com"}, "invalid_shop"),
        ({"shop": "evil.example.com; script-src *"}, "invalid_shop"),
        ({"shop": "漢字.myshopify.com"}, "invalid_shop"),
        ({"shop": ["{shop}", "evil.example.com"]}, "invalid_shop"),
        ({"shop": None}, "invalid_shop"),
        ({"shopify-reload": None}, "invalid_shopify_reload"),
        ({"shopify-reload": "https://evil.example.com/"}, "invalid_shopify_reload"),
        ({"shopify-reload": "//evil.example.com/"}, "invalid_shopify_reload"),
        ({"shopify-reload": "/\r\nx"}, "invalid_shopify_reload"),
    ],
)
async def test_session_token_page_refuses_what_is_not_a_shop_and_a_path(
    server: LiveServer, params: dict[str, Any], code: str
) -> None:
    shop = new_shop_domain()
    query = {"shop": shop, "shopify-reload": "/", **params}
    query = {
        key: [v.replace("{shop}", shop) for v in value]
        if isinstance(value, list)
        else value.replace("{shop}", shop)
        for key, value in query.items()
        if value is not None
    }
    async with httpx.AsyncClient(
        base_url=server.url, limits=httpx.Limits(max_connections=1)
    ) as browser:
        response = await browser.get("/auth/session-token", params=query)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code
        assert "content-security-policy" not in response.headers or (
            "frame-ancestors 'none'" in response.headers["content-security-policy"]
        )
        # After the 500 the server closed the connection; now it answers the next request.
        assert (await browser.get("/healthz")).status_code == 200


async def test_callback_needs_the_state_of_this_browser(
    app_server: LiveServer,
    admin: tuple[FakeShopify, LiveServer],
    fake: FakeShopify,
    db: Database,
) -> None:
    shop = new_shop_domain()
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        started = await browser.get("/auth?" + signed_oauth_query({"shop": shop}))
        state = httpx.URL(started.headers["location"]).params["state"]
        fake.codes["known-code"] = shop
        forged = await browser.get(
            "/auth/callback?"
            + signed_oauth_query({"shop": shop, "code": "known-code", "state": "not-" + state})
        )
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "invalid_state"
        other_shop = await browser.get(
            "/auth/callback?"
            + signed_oauth_query({"shop": new_shop_domain(), "code": "known-code", "state": state})
        )
        assert other_shop.status_code == 403
    async with httpx.AsyncClient(base_url=app_server.url) as stranger:  # no state cookie
        stolen = await stranger.get(
            "/auth/callback?"
            + signed_oauth_query({"shop": shop, "code": "known-code", "state": state})
        )
        assert stolen.status_code == 403
    async with db.session() as session:
        assert await repo.get_shop(session, domain=shop) is None, "nothing was installed"


async def test_refused_code_is_a_clear_error(app_server: LiveServer, fake: FakeShopify) -> None:
    shop = new_shop_domain()
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        started = await browser.get("/auth?" + signed_oauth_query({"shop": shop}))
        state = httpx.URL(started.headers["location"]).params["state"]
        response = await browser.get(
            "/auth/callback?"
            + signed_oauth_query({"shop": shop, "code": "never-issued", "state": state})
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "code_exchange_failed"


async def test_app_url_installs_a_new_shop_and_opens_an_installed_one(
    app_server: LiveServer, db: Database
) -> None:
    installed = await make_shop(db)
    async with httpx.AsyncClient(base_url=app_server.url) as browser:
        new = await browser.get("/?" + signed_oauth_query({"shop": new_shop_domain()}))
        assert new.status_code == 302
        assert "/admin/oauth/authorize" in new.headers["location"]
        known = await browser.get("/?" + signed_oauth_query({"shop": installed}))
        assert known.status_code == 302
        assert known.headers["location"] == f"https://{installed}/admin/apps/{TEST_API_KEY}"
        forged = await browser.get("/?" + signed_oauth_query({"shop": installed})[:-2] + "00")
        assert forged.status_code == 401


async def test_reinstall_after_uninstall_restores_the_shop(
    app_server: LiveServer,
    admin: tuple[FakeShopify, LiveServer],
    fake: FakeShopify,
    db: Database,
) -> None:
    shop = new_shop_domain()
    await _install(app_server, admin[1].url, shop)
    async with db.session() as session:
        await repo.uninstall_shop(session, domain=shop)
    async with ProxyClient(app_server.url, shop) as storefront:
        assert (await storefront.send(new_id(), "hello")).status_code == 403
        finished = await _install(app_server, admin[1].url, shop)
        assert finished.status_code == 302
        assert (await storefront.send(new_id(), "hello")).status_code == 200


async def test_session_token_of_a_new_shop_is_exchanged_for_an_offline_token(
    app_server: LiveServer, fake: FakeShopify, db: Database
) -> None:
    shop = new_shop_domain()
    async with AdminClient(app_server.url, shop) as merchant:
        response = await merchant.get("/api/admin/conversations")
    assert response.status_code == 200
    exchange = next(r for r in fake.requests if r["path"] == "access_token")
    assert exchange["body"]["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert exchange["body"]["requested_token_type"].endswith(":offline-access-token")
    assert str(exchange["body"].get("expiring")) == "1"
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
    assert stored is not None and server_cipher().decrypt(stored.access_token) in fake.tokens


async def test_failed_token_exchange_is_403(app_server: LiveServer, fake: FakeShopify) -> None:
    fake.refuse = True
    async with AdminClient(app_server.url, new_shop_domain()) as merchant:
        response = await merchant.get("/api/admin/conversations")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "install_incomplete"


async def _catalog_imported(db: Database, shop: str) -> None:
    async def ended() -> bool:
        async with db.session() as session:
            stored = await repo.get_shop(session, domain=shop)
            assert stored is not None and stored.id is not None
            catalog = await repo.catalog_of(session, shop_id=stored.id)
        return catalog is not None and catalog.status in ("finished", "failed")

    await eventually(ended)


async def test_token_is_refreshed_before_it_expires(
    app_server: LiveServer,
    admin: tuple[FakeShopify, LiveServer],
    fake: FakeShopify,
    db: Database,
) -> None:
    shop = new_shop_domain()
    await _install(app_server, admin[1].url, shop)
    await _catalog_imported(db, shop)  # the install's import, which uses the token too
    async with db.session() as session:
        installed = await repo.get_shop(session, domain=shop)
        first = server_cipher().decrypt(installed.access_token)
        # Inside the one-minute margin: due for a refresh on first use.
        await session.execute(
            sa.update(Shop)
            .where(col(Shop.id) == installed.id)
            .values(access_token_expires_at=utcnow() + timedelta(seconds=30))
        )
    fake.requests.clear()
    async with AdminClient(app_server.url, shop) as merchant:
        saved = await merchant.put("/api/admin/settings", {"greeting": "Welcome to our shop!"})
    assert saved.status_code == 200
    assert saved.json()["storefront_synced"] is True
    async with db.session() as session:
        stored = await repo.get_shop(session, domain=shop)
    second = server_cipher().decrypt(stored.access_token)
    assert second != first
    assert aware(stored.access_token_expires_at) > utcnow() + timedelta(hours=23)
    refresh = [r for r in fake.requests if r.get("body", {}).get("grant_type") == "refresh_token"]
    assert len(refresh) == 1 and refresh[0]["shop"] == shop
    graphql = [r for r in fake.requests if r["path"] == "graphql"]
    assert graphql and all(r["token"] == second for r in graphql)
    assert fake.metafields[shop]["greeting"] == "Welcome to our shop!"


def test_oauth_hmac_matches_shopifys_documented_example() -> None:
    shopify = Shopify(api_key="key", api_secret="hush")
    query = (
        "code=0907a61c0c8d55e99db179b68161bc00&hmac=700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390"
        "d2cbca10d7c328fc4bf&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173"
    )
    params = verify_oauth_query(shopify, query, max_age=None)
    assert params["code"] == "0907a61c0c8d55e99db179b68161bc00"
    with pytest.raises(ShopifyAuthError):
        verify_oauth_query(shopify, query.replace("state=0.67", "state=0.68"), max_age=None)
    with pytest.raises(ShopifyAuthError):
        verify_oauth_query(shopify, query)  # the example is from 2012: too old to accept today
