"""Shopify specifics, behind one small wrapper around Shopify's own `shopifyapp` package."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from shopify_app import ShopifyApp

SHOP_DOMAIN_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$")
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
    return bool(SHOP_DOMAIN_RE.fullmatch(value))


class Shopify:
    """Our app's view of Shopify: built once from the settings."""

    def __init__(self, *, api_key: str, api_secret: str, old_api_secret: str | None = None):
        self.api_secret = api_secret
        self.app = ShopifyApp(
            client_id=api_key, client_secret=api_secret, old_client_secret=old_api_secret
        )

    def verify_app_proxy(
        self, *, method: str, url: str, query_string: str, headers: Mapping[str, str]
    ) -> ProxyIdentity:
        pairs = parse_qsl(query_string, keep_blank_values=True)
        for name in SINGLE_VALUED:
            if sum(1 for key, _ in pairs if key == name) > 1:
                raise ProxyVerificationError(
                    "repeated_parameter", f"The request repeats the {name!r} parameter."
                )
        result = self.app.verify_app_proxy_req(
            {"method": method, "headers": dict(headers), "url": url, "body": ""}
        )
        if not result.ok:
            code = result.log.code
            raise ProxyVerificationError(
                code, _PROXY_FAILURES.get(code, "The app-proxy request could not be verified.")
            )
        shop = dict(pairs).get("shop", "")
        if not is_shop_domain(shop):
            raise ProxyVerificationError(
                "invalid_shop", "The signed shop is not a myshopify domain."
            )
        customer = dict(pairs).get("logged_in_customer_id") or None
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
