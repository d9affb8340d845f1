"""Shopify specifics, behind one small wrapper around Shopify's own `shopifyapp` package."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from shopify_app import (
    ShopifyApp,
)
from starlette.types import ASGIApp

WEBHOOK_SIGNATURE_HEADERS = ("x-shopify-hmac-sha256", "shopify-hmac-sha256")
# The shop's name is one DNS label (at most 63 characters), so a domain fits its columns and
# every rate-limit bucket it is part of.
SHOP_DOMAIN_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}\.myshopify\.com$")
# Signatures as Shopify writes them: hex HMAC-SHA256. Checked before they are compared, as
# hmac.compare_digest raises TypeError (a 500) on a str with any non-ASCII character.
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,18}")
# Shopify's customer ids are numbers; Conversation.customer_id holds 64 characters.
_CUSTOMER_ID = re.compile(r"[0-9]{1,64}")
# Parameters whose repetition Shopify never sends; a repeat is a tampering attempt.
SINGLE_VALUED = ("shop", "signature", "timestamp", "logged_in_customer_id")

_PROXY_FAILURES = {
    "missing_signature": "The request has no app-proxy signature.",
    "invalid_signature": "The app-proxy signature does not match.",
    "missing_timestamp": "The request has no app-proxy timestamp.",
    "invalid_timestamp": "The app-proxy timestamp is not a number.",
    "timestamp_too_old": "The app-proxy timestamp is more than 90 seconds away from now.",
    "multiple_shop_parameters": "The request repeats the shop parameter.",
}


class ProxyVerificationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ProxyIdentity:
    shop: str  # the full myshopify domain
    customer_id: str | None


def is_shop_domain(value: str) -> bool:
    return len(value) <= 255 and bool(SHOP_DOMAIN_RE.fullmatch(value))


class ShopifyAuthError(Exception):
    """A request claiming to come from Shopify that does not verify; `headers` go with the 401."""

    def __init__(
        self, code: str, message: str, headers: Mapping[str, str] | None = None, status: int = 401
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.status = status


@dataclass(frozen=True)
class SessionToken:
    shop: str
    user_id: str | None
    token: str
    claims: dict[str, Any]


class _AdminTransport(httpx.AsyncBaseTransport):
    """Tests and development only: sends https://{shop}/admin/... to a fake admin.

    `base_url` takes every shop's admin calls (the tests' fake on loopback, which tells the
    shops apart by the Host header). `shops` takes one shop's calls to an admin of its own,
    its path prefixed and the Host its own: the development app's demo shop, whose fake admin
    is mounted on the app itself (app/dev/fake_admin.py), while other shops keep Shopify's."""

    def __init__(
        self,
        base_url: str = "",
        shops: Mapping[str, str] | None = None,
        local: tuple[str, ASGIApp] | None = None,
    ) -> None:
        self.base = httpx.URL(base_url) if base_url else None
        self.shops = {shop: httpx.URL(url.rstrip("/")) for shop, url in (shops or {}).items()}
        self.inner = httpx.AsyncHTTPTransport()
        # The app's own URL and the app: a call to it is answered in-process, so that the
        # development app reaches the fake admin mounted on it while it is still starting
        # (not yet listening), behind a tunnel, and never another process on its port.
        self.local = (
            (_origin(httpx.URL(local[0])), httpx.ASGITransport(local[1])) if local else None
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        own = self.shops.get(host)
        if own is not None:
            request.url = request.url.copy_with(
                scheme=own.scheme,
                host=own.host,
                port=own.port,
                raw_path=own.raw_path.rstrip(b"/") + request.url.raw_path,
            )
            request.headers["Host"] = own.netloc.decode("ascii")
        elif self.base is not None and host.endswith(".myshopify.com"):
            request.url = request.url.copy_with(
                scheme=self.base.scheme, host=self.base.host, port=self.base.port
            )
        if self.local is not None and _origin(request.url) == self.local[0]:
            return await self.local[1].handle_async_request(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _escape_oauth(value: str, *, key: bool = False) -> str:
    value = value.replace("%", "%25").replace("&", "%26")
    return value.replace("=", "%3D") if key else value


class Shopify:
    """Our app's view of Shopify: built once from the settings."""

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        old_api_secret: str | None = None,
        scopes: str = "",
        app_url: str = "",
        api_version: str = "2025-10",
        admin_base_url: str = "",
        admin_urls: Mapping[str, str] | None = None,
        local_app: ASGIApp | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.scopes = scopes
        self.app_url = app_url.rstrip("/")
        self.api_version = api_version
        self.app = ShopifyApp(
            client_id=api_key, client_secret=api_secret, old_client_secret=old_api_secret
        )
        # Fakes of the admin: admin_base_url for every shop, admin_urls for the shops named
        # (served in-process by local_app when they are the app's own URL).
        transport = (
            _AdminTransport(
                admin_base_url, admin_urls, (self.app_url, local_app) if local_app else None
            )
            if admin_base_url or admin_urls
            else None
        )
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(15.0), transport=transport)

    async def aclose(self) -> None:
        await self.http.aclose()

    def verify_app_proxy(self, *, path: str, query_string: str) -> ProxyIdentity:
        """The signed shop and customer of an app-proxy request, from its path and query.

        Only the query is signed; the headers and body are not, so they are not passed
        (shopifyapp would only copy them to redact them for a log we do not keep).
        """
        pairs = parse_qsl(query_string, keep_blank_values=True)
        values: dict[str, str] = {}
        for key, value in pairs:
            if key in values and key in SINGLE_VALUED:
                raise ProxyVerificationError(
                    "repeated_parameter", f"The request repeats the {key!r} parameter."
                )
            values[key] = value
        signature = values.get("signature")
        if signature is not None and not _HEX_DIGEST.fullmatch(signature):
            raise ProxyVerificationError("invalid_signature", _PROXY_FAILURES["invalid_signature"])
        # The path is not signed: quoted, a '?' or '#' in it cannot stand in for the query.
        result = self.app.verify_app_proxy_req(
            {"method": "GET", "headers": {}, "url": f"{quote(path)}?{query_string}", "body": ""}
        )
        if not result.ok:
            code = result.log.code
            raise ProxyVerificationError(
                code, _PROXY_FAILURES.get(code, "The app-proxy request could not be verified.")
            )
        shop = values.get("shop", "")
        if not is_shop_domain(shop):
            raise ProxyVerificationError(
                "invalid_shop", "The signed shop is not a myshopify domain."
            )
        customer = values.get("logged_in_customer_id") or None
        if customer is not None and not _CUSTOMER_ID.fullmatch(customer):
            raise ProxyVerificationError(
                "invalid_customer_id", "The signed customer id is not a Shopify customer id."
            )
        return ProxyIdentity(shop=shop.lower(), customer_id=customer)


def sign_proxy_query(params: Mapping[str, str | list[str]], secret: str) -> str:
    """Sign a query as Shopify's app proxy does; used by the local storefront and the tests.

    shopifyapp verifies proxy signatures but has no signer, so this is the one place we
    write Shopify's scheme ourselves: HMAC-SHA256 hex over sorted `key=value` pairs of the
    decoded values, repeated values joined by commas, no separator.
    """
    message = "".join(
        f"{key}={','.join(value) if isinstance(value, list) else value}"
        for key, value in sorted(params.items())
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_proxy_query(
    *,
    shop: str,
    secret: str,
    customer_id: str | None = None,
    extra: Mapping[str, str] | None = None,
    timestamp: int | None = None,
    path_prefix: str = "/apps/chat",
) -> str:
    params: dict[str, str] = {
        "shop": shop,
        "path_prefix": path_prefix,
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "logged_in_customer_id": customer_id or "",
        **(extra or {}),
    }
    params["signature"] = sign_proxy_query(params, secret)
    return urlencode(params)


# The methods below extend Shopify; kept as functions over it to keep each concern readable.


def verify_webhook(shopify: Shopify, *, url: str, headers: Mapping[str, str], body: bytes) -> str:
    """The body of a webhook whose signature verifies, as text; raises ShopifyAuthError.

    Only the body is signed: the topic, the shop and the webhook id in the headers are not,
    so what the webhook means is read from the body by its topic (app/privacy.py).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ShopifyAuthError("invalid_hmac", "The webhook body is not UTF-8.") from exc
    # shopifyapp reads the signature (and only it) from the headers; it compares strings,
    # which fails on anything but ASCII, and a base64 HMAC-SHA256 is 44 ASCII characters.
    signature = {
        name: value for name, value in headers.items() if name.lower() in WEBHOOK_SIGNATURE_HEADERS
    }
    if not all(value.isascii() and len(value) <= 100 for value in signature.values()):
        raise ShopifyAuthError("invalid_hmac", "The webhook signature does not match.")
    result = shopify.app.verify_webhook_req(
        {"method": "POST", "headers": signature, "url": url, "body": text}
    )
    if not result.ok:
        # Shopify's package answers a missing header with 400; a missing signature is still an
        # unauthenticated request, so both are 401 here, as the webhook contract asks.
        code = result.log.code if result.log.code != "missing_hmac_header" else "missing_hmac"
        raise ShopifyAuthError(code, "The webhook signature is missing or does not match.")
    return text


def verify_session_token(
    shopify: Shopify, *, method: str, url: str, headers: Mapping[str, str]
) -> SessionToken:
    """An App Bridge session token (Authorization: Bearer, or id_token on a document request)."""
    result = shopify.app.verify_app_home_req(
        {"method": method, "headers": dict(headers), "url": url, "body": ""},
        app_home_patch_id_token_path="/auth/session-token",
    )
    if not result.ok or not result.shop or result.id_token is None:
        headers = dict(result.response.headers)
        if result.response.status == 401:
            headers["X-Shopify-Retry-Invalid-Session-Request"] = "1"
        raise ShopifyAuthError(
            result.log.code,
            "A valid Shopify session token is required.",
            headers,
            status=result.response.status if result.response.status in (302, 401) else 401,
        )
    shop = f"{result.shop}.myshopify.com"
    if not is_shop_domain(shop):
        # Signed by Shopify, so never seen in practice; it would name a page's frame-ancestors.
        raise ShopifyAuthError("invalid_shop", "The session token does not name a shop.")
    return SessionToken(
        shop=shop,
        user_id=result.user_id,
        token=result.id_token.token,
        claims=dict(result.id_token.claims),
    )


def verify_oauth_query(
    shopify: Shopify, query: str, *, max_age: float | None = 24 * 3600
) -> dict[str, str]:
    """The `hmac` of an install/open URL or OAuth callback (shopifyapp has no check for these).

    Shopify's scheme: drop hmac and signature, escape %, & (and = in keys), sort, join with &.
    Returns the query as a dict; raises ShopifyAuthError on a bad or missing signature.
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ShopifyAuthError("repeated_parameter", "The request repeats a parameter.")
    params = dict(pairs)
    received = params.pop("hmac", "")
    params.pop("signature", None)
    message = "&".join(
        f"{_escape_oauth(k, key=True)}={_escape_oauth(v)}" for k, v in sorted(params.items())
    )
    expected = hmac.new(shopify.api_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    if not _HEX_DIGEST.fullmatch(received) or not hmac.compare_digest(received.lower(), expected):
        raise ShopifyAuthError("invalid_hmac", "The request's hmac is missing or does not match.")
    timestamp = params.get("timestamp", "")
    if not _TIMESTAMP.fullmatch(timestamp) or (
        max_age is not None and abs(time.time() - int(timestamp)) > max_age
    ):
        raise ShopifyAuthError("stale_request", "The request's timestamp is missing or too old.")
    shop = params.get("shop", "").lower()
    if not is_shop_domain(shop):
        raise ShopifyAuthError("invalid_shop", "The shop is not a myshopify domain.")
    params["shop"] = shop
    return params


def authorize_url(shopify: Shopify, *, shop: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": shopify.api_key,
            "scope": shopify.scopes,
            "redirect_uri": f"{shopify.app_url}/auth/callback",
            "state": state,
        }
    )
    return f"https://{shop}/admin/oauth/authorize?{query}"
