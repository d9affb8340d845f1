"""Shopify's Admin API, through shopifyapp: the offline tokens granted to the app (by OAuth code,
token exchange and refresh) and GraphQL calls with them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from shopify_app import (
    TokenExchangeAccessToken,
    admin_graphql_request_async,
    refresh_access_token_async,
    token_exchange_async,
)

from app.shopify import SessionToken, Shopify


class ShopifyAdminError(Exception):
    """Shopify's admin refused or failed an exchange (code, token, refresh, GraphQL).

    `code` is shopifyapp's (or ours), `status` the HTTP status when Shopify answered (0 when
    it could not be reached)."""

    def __init__(
        self, message: str, *, code: str = "", status: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        # Seconds Shopify asks us to wait, when it throttled the call (code THROTTLED).
        self.retry_after = retry_after

    @property
    def throttled(self) -> bool:
        return self.code == THROTTLED


THROTTLED = "THROTTLED"
# Refusals of a refresh that will not pass on a retry: the refresh token is gone for good.
REFRESH_REVOKED = frozenset({"invalid_grant", "refresh_token_expired"})


@dataclass(frozen=True)
class AccessGrant:
    access_token: str
    scope: str
    expires_at: datetime | None
    refresh_token: str | None
    refresh_token_expires_at: datetime | None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _grant(token: TokenExchangeAccessToken) -> AccessGrant:
    return AccessGrant(
        access_token=token.token,
        scope=token.scope,
        expires_at=_parse_time(token.expires),
        refresh_token=token.refresh_token,
        refresh_token_expires_at=_parse_time(token.refresh_token_expires),
    )


async def exchange_code(shopify: Shopify, *, shop: str, code: str) -> AccessGrant:
    """Authorization code grant, asking for an expiring offline token (expiring=1)."""
    try:
        response = await shopify.http.post(
            f"https://{shop}/admin/oauth/access_token",
            json={
                "client_id": shopify.api_key,
                "client_secret": shopify.api_secret,
                "code": code,
                "expiring": 1,
            },
            headers={"Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise ShopifyAdminError(f"Shopify could not be reached: {exc}") from exc
    if response.status_code != 200:
        raise ShopifyAdminError(f"Shopify refused the code (HTTP {response.status_code})")
    data = response.json()
    now = time.time()
    expires_in = data.get("expires_in")
    refresh_in = data.get("refresh_token_expires_in")
    return AccessGrant(
        access_token=data["access_token"],
        scope=data.get("scope", ""),
        expires_at=datetime.fromtimestamp(now + expires_in, UTC) if expires_in else None,
        refresh_token=data.get("refresh_token"),
        refresh_token_expires_at=datetime.fromtimestamp(now + refresh_in, UTC)
        if refresh_in
        else None,
    )


async def exchange_session_token(shopify: Shopify, token: SessionToken) -> AccessGrant:
    """Token exchange (managed installation): a session token for an expiring offline token."""
    result = await token_exchange_async(
        "offline",
        shopify.app.config,
        id_token={"exchangeable": True, "token": token.token, "claims": token.claims},
        expiring=True,
        http_client=shopify.http,
    )
    if not result.ok or result.access_token is None:
        raise ShopifyAdminError(
            f"token exchange failed: {result.log.code}",
            code=result.log.code,
            status=result.response.status,
        )
    return _grant(result.access_token)


async def refresh_grant(
    shopify: Shopify,
    *,
    shop: str,
    refresh_token: str,
    expires_at: datetime | None,
    refresh_token_expires_at: datetime | None,
) -> AccessGrant | None:
    """A fresh token when the current one expires within a minute; None while it is still good."""
    result = await refresh_access_token_async(
        {
            "shop": shop.removesuffix(".myshopify.com"),
            "token": "",
            "refresh_token": refresh_token,
            "expires": _iso(expires_at),
            "refresh_token_expires": _iso(refresh_token_expires_at),
            "access_mode": "offline",
            "scope": "",
            "user": None,
        },
        shopify.app.config,
        shopify.http,
    )
    if not result.ok:
        raise ShopifyAdminError(
            f"token refresh failed: {result.log.code}",
            code=result.log.code,
            status=result.response.status,
        )
    return _grant(result.access_token) if result.access_token else None


def _seconds(value: object) -> float | None:
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


def _graphql_failure(status: int, body: str, headers: dict[str, str]) -> ShopifyAdminError:
    """What a failed call says, read from Shopify's answer: throttled (HTTP 429, or a THROTTLED
    error with the bucket's state in extensions.cost) with how long to wait, or the first
    error's message."""
    if status == 429:
        retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
        return ShopifyAdminError(
            "Shopify is rate limiting the app",
            code=THROTTLED,
            status=429,
            retry_after=_seconds(retry),
        )
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        codes = [(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)]
        if THROTTLED in codes:
            cost = ((answer.get("extensions") or {}).get("cost")) or {}
            bucket = cost.get("throttleStatus") or {}
            wait = None
            try:
                needed = float(cost["requestedQueryCost"]) - float(bucket["currentlyAvailable"])
                wait = max(needed, 0.0) / float(bucket["restoreRate"])
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                pass
            return ShopifyAdminError(
                "Shopify throttled the query", code=THROTTLED, status=status, retry_after=wait
            )
        message = str(errors[0].get("message") or "")[:200]
        return ShopifyAdminError(
            f"Admin API error: {message}", code="graphql_errors", status=status
        )
    if isinstance(errors, str):
        return ShopifyAdminError(
            f"Admin API error: {errors[:200]}", code="graphql_errors", status=status
        )
    return ShopifyAdminError(f"Admin API request failed (HTTP {status})", status=status)


async def admin_graphql(
    shopify: Shopify,
    *,
    shop: str,
    access_token: str,
    query: str,
    variables: dict[str, Any] | None = None,
    retries: int = 2,
) -> dict[str, Any]:
    """`retries`: how often shopifyapp itself retries a 429 or 5xx; callers that wait for a
    throttled bucket themselves (app/catalog/sync.py) pass 0."""
    result = await admin_graphql_request_async(
        query,
        shop.removesuffix(".myshopify.com"),
        access_token,
        shopify.api_version,
        variables=variables,
        max_retries=retries,
        http_client=shopify.http,
    )
    if not result.ok:
        response = result.response
        if response is not None and response.status:
            failure = _graphql_failure(response.status, response.body or "", response.headers or {})
            failure.code = failure.code or result.log.code
            raise failure
        raise ShopifyAdminError(
            f"Admin API request failed: {result.log.code}",
            code=result.log.code,
            status=response.status if response is not None else 0,
        )
    return dict(result.data or {})
