"""App-proxy verification: every rule Shopify's signature scheme implies, and shop status."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import pytest

from app.db import Database
from app.shopify import is_shop_domain, sign_proxy_query
from tests.factories import TEST_API_SECRET, ProxyClient, make_shop, messages_of, new_id


def _signed_params(shop: str, **extra: str) -> dict[str, str]:
    params = {
        "shop": shop,
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": "",
        **extra,
    }
    params["signature"] = sign_proxy_query(params, TEST_API_SECRET)
    return params


async def _status(client: ProxyClient, query: str) -> httpx.Response:
    return await client.http.get(f"/proxy/sessions/status?{query}")


async def test_valid_signature_is_accepted(client: ProxyClient) -> None:
    query = urlencode(_signed_params(client.shop, session_id=new_id()))
    response = await _status(client, query)
    assert response.status_code == 200


async def test_signature_is_over_decoded_values(client: ProxyClient) -> None:
    # Values that need percent-encoding are signed as Shopify signs them: decoded.
    params = _signed_params(client.shop, session_id=new_id(), note="a b&c=d/é")
    response = await _status(client, urlencode(params))
    assert response.status_code == 200


async def test_repeated_non_identity_keys_are_signed_joined_by_commas(client: ProxyClient) -> None:
    session_id = new_id()
    params: dict[str, str | list[str]] = {
        "shop": client.shop,
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": "",
        "session_id": session_id,
        "tag": ["x", "y"],
    }
    signature = sign_proxy_query(params, TEST_API_SECRET)
    query = urlencode({**params, "signature": signature}, doseq=True)
    assert "tag=x&tag=y" in query
    assert (await _status(client, query)).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        "value",
        "key",
        "added",
        "dropped",
        "timestamp",
        "signature",
        "shop",
    ],
)
async def test_any_tampering_is_rejected(client: ProxyClient, db: Database, change: str) -> None:
    other_shop = await make_shop(db)
    params = _signed_params(client.shop, session_id=new_id())
    if change == "value":
        params["session_id"] = new_id()
    elif change == "key":
        params["path_prefiks"] = params.pop("path_prefix")
    elif change == "added":
        params["logged_in_customer_id"] = "12345"
    elif change == "dropped":
        del params["path_prefix"]
    elif change == "timestamp":
        params["timestamp"] = str(int(params["timestamp"]) + 1)
    elif change == "signature":
        params["signature"] = params["signature"][:-1] + (
            "0" if params["signature"][-1] != "0" else "1"
        )
    elif change == "shop":
        params["shop"] = other_shop
    response = await _status(client, urlencode(params))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("age", [-200, 91, 3600])
async def test_stale_or_future_timestamp_is_rejected(client: ProxyClient, age: int) -> None:
    response = await client.get(
        "/proxy/sessions/status", {"session_id": new_id()}, timestamp=int(time.time()) - age
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "timestamp_too_old"


async def test_timestamp_just_inside_the_window_is_accepted(client: ProxyClient) -> None:
    response = await client.get(
        "/proxy/sessions/status", {"session_id": new_id()}, timestamp=int(time.time()) - 80
    )
    assert response.status_code == 200


@pytest.mark.parametrize("name", ["shop", "signature", "timestamp", "logged_in_customer_id"])
async def test_repeated_identity_parameter_is_rejected(client: ProxyClient, name: str) -> None:
    params = _signed_params(client.shop, session_id=new_id())
    query = urlencode(params) + f"&{name}={params[name]}"
    response = await _status(client, query)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "repeated_parameter"
    assert name in response.json()["error"]["message"]


@pytest.mark.parametrize("missing", ["signature", "timestamp", "all"])
async def test_missing_signature_or_timestamp_is_rejected(
    client: ProxyClient, missing: str
) -> None:
    params = _signed_params(client.shop, session_id=new_id())
    if missing == "all":
        query = f"session_id={params['session_id']}"
    else:
        del params[missing]
        query = urlencode(params)
    response = await _status(client, query)
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"].startswith("missing_")
    assert body["error"]["message"]


async def test_signature_made_with_another_secret_is_rejected(client: ProxyClient) -> None:
    forged = ProxyClient(str(client.http.base_url), client.shop, secret="not-the-app-secret-0000")
    async with forged:
        response = await forged.get("/proxy/sessions/status", {"session_id": new_id()})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"


async def test_signed_shop_that_is_not_a_myshopify_domain_is_rejected(client: ProxyClient) -> None:
    async with client.as_shop("evil.example.com") as other:
        response = await other.get("/proxy/sessions/status", {"session_id": new_id()})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_shop"


async def test_unknown_shop_is_forbidden(client: ProxyClient) -> None:
    async with client.as_shop("never-installed.myshopify.com") as other:
        response = await other.get("/proxy/sessions/status", {"session_id": new_id()})
        turn = await other.send(new_id(), "hello")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "shop_not_installed"
    assert turn.status_code == 403


async def test_uninstalled_shop_is_forbidden_and_saves_nothing(server, db: Database) -> None:
    shop = await make_shop(db, installed=False)
    session_id = new_id()
    async with ProxyClient(server.url, shop) as client:
        turn = await client.send(session_id, "hello")
    assert turn.status_code == 403
    assert turn.body["error"]["code"] == "shop_not_installed"
    assert await messages_of(db, shop, session_id) == []


async def test_identity_never_comes_from_headers_or_body(client: ProxyClient, db: Database) -> None:
    other_shop = await make_shop(db)
    session_id = new_id()
    response = await client.http.post(
        client.url("/proxy/messages"),
        json={
            "session_id": session_id,
            "message": "hi",
            "shop": other_shop,
            "logged_in_customer_id": "999",
        },
        headers={"X-Shopify-Shop-Domain": other_shop, "X-Shopify-Customer-Id": "999"},
    )
    await response.aread()
    assert response.status_code == 200
    assert len(await messages_of(db, client.shop, session_id)) == 2
    assert await messages_of(db, other_shop, session_id) == []
    history = await client.history(session_id)
    assert len(history.json()["messages"]) == 2, "saved as anonymous, not as customer 999"


async def test_query_values_are_parsed_after_verification_not_trusted_raw(
    client: ProxyClient,
) -> None:
    # A signature computed over the raw (encoded) query must not verify.
    params = {
        "shop": client.shop,
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": "",
        "session_id": new_id(),
    }
    raw = urlencode(params)
    bogus = sign_proxy_query(dict(parse_qsl(raw.replace("%2F", "%252F"))), TEST_API_SECRET)
    response = await _status(client, raw + f"&signature={bogus}")
    assert response.status_code == 401


@pytest.mark.parametrize("signature", ["é" * 64, "²", "not-hex-" * 8, "0" * 65, ""])
async def test_a_signature_that_is_not_hex_is_rejected(client: ProxyClient, signature: str) -> None:
    # A non-ASCII one reached hmac.compare_digest, which raises TypeError on it: a 500.
    params = _signed_params(client.shop, session_id=new_id())
    params["signature"] = signature
    response = await _status(client, urlencode(params))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"


async def test_a_query_hidden_in_the_path_does_not_vouch_for_the_real_one(
    client: ProxyClient,
) -> None:
    # The path is not signed. A query signed for one's own shop, put in the path before a '#',
    # was what got verified, and the real query named the shop.
    hidden = urlencode(_signed_params(client.shop))
    path = "/proxy/messages/" + quote(f"x?{hidden}#", safe="") + "/stream"
    real = urlencode(
        {
            "shop": "never-installed.myshopify.com",
            "timestamp": str(int(time.time())),
            "session_id": new_id(),
        }
    )
    response = await client.http.get(f"{path}?{real}")
    assert response.status_code == 401


# Past its column, or a NUL PostgreSQL cannot store: a 500 when the conversation was saved.
@pytest.mark.parametrize(
    "customer", ["1" * 65, "\x00", "12\x0034", "²", "gid://shopify/Customer/1"]
)
async def test_a_signed_customer_id_that_is_not_shopifys_is_rejected(
    client: ProxyClient, db: Database, customer: str
) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "hello", customer_id=customer)
    assert turn.status_code == 401
    assert turn.body["error"]["code"] == "invalid_customer_id"
    assert await messages_of(db, client.shop, session_id) == []


def test_a_shop_name_is_one_dns_label() -> None:
    assert is_shop_domain("a" * 63 + ".myshopify.com")
    assert not is_shop_domain("a" * 64 + ".myshopify.com")


async def test_a_signed_shop_name_longer_than_a_dns_label_is_rejected(client: ProxyClient) -> None:
    async with client.as_shop("a" * 64 + ".myshopify.com") as other:
        response = await other.get("/proxy/sessions/status", {"session_id": new_id()})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_shop"
