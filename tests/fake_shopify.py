"""A fake Shopify admin on loopback: OAuth authorize and access_token, token exchange, GraphQL,
and a shop's catalog as an import reads it (pages, a bulk operation and its JSONL file)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.factories import TEST_API_KEY, TEST_API_SECRET
from tests.fake_catalog import FakeCatalogs


def sign_oauth(params: dict[str, str], secret: str = TEST_API_SECRET) -> str:
    """Shopify's OAuth hmac: sorted key=value pairs joined by &, hex HMAC-SHA256."""
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("hmac",))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_oauth_query(params: dict[str, str], secret: str = TEST_API_SECRET) -> str:
    params = {**params}
    params.setdefault("timestamp", str(int(time.time())))
    return urlencode({**params, "hmac": sign_oauth(params, secret)})


class FakeShopify:
    def __init__(self) -> None:
        self.codes: dict[str, str] = {}  # code -> shop
        self.tokens: dict[str, str] = {}  # access token -> shop
        self.refresh_tokens: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.refuse = False
        self.expires_in = 86400
        self.metafields: dict[str, dict[str, str]] = {}
        self.catalogs = FakeCatalogs()
        self.app = Starlette(
            routes=[
                Route("/admin/oauth/authorize", self.authorize, methods=["GET"]),
                Route("/admin/oauth/access_token", self.access_token, methods=["POST"]),
                Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
                Route("/bulk/{operation}.jsonl", self.catalogs.result_file, methods=["GET"]),
            ]
        )

    def _grant(self, shop: str) -> dict[str, Any]:
        token = "shpat_" + secrets.token_hex(16)
        refresh = "shprt_" + secrets.token_hex(16)
        self.tokens[token] = shop
        self.refresh_tokens[refresh] = shop
        return {
            "access_token": token,
            "scope": "read_products",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
            "refresh_token_expires_in": 90 * 86400,
        }

    async def authorize(self, request: Request) -> Response:
        """The merchant approves: Shopify redirects back with a code, signed."""
        shop = request.headers["host"].split(":")[0]
        code = secrets.token_hex(8)
        self.codes[code] = shop
        query = signed_oauth_query(
            {
                "code": code,
                "shop": shop,
                "state": request.query_params["state"],
                "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvdGVzdA",
            }
        )
        return RedirectResponse(f"{request.query_params['redirect_uri']}?{query}", 302)

    async def access_token(self, request: Request) -> Response:
        body = (
            await request.json()
            if "json" in request.headers.get("content-type", "")
            else (dict((await request.form()).items()))
        )
        shop = request.headers["host"].split(":")[0]
        self.requests.append({"path": "access_token", "shop": shop, "body": body})
        if (
            self.refuse
            or body.get("client_id") != TEST_API_KEY
            or (body.get("client_secret") != TEST_API_SECRET)
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        grant = body.get("grant_type")
        if grant == "refresh_token":
            if self.refresh_tokens.pop(body.get("refresh_token"), None) != shop:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return JSONResponse(self._grant(shop))
        if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
            return JSONResponse(self._grant(shop))
        if self.codes.pop(body.get("code", ""), None) != shop:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        return JSONResponse(self._grant(shop))

    async def graphql(self, request: Request) -> Response:
        shop = request.headers["host"].split(":")[0]
        token = request.headers.get("x-shopify-access-token", "")
        body = await request.json()
        self.requests.append({"path": "graphql", "shop": shop, "token": token, "body": body})
        if self.tokens.get(token) != shop:
            return JSONResponse({"errors": "Invalid API key or access token"}, status_code=401)
        query = body.get("query", "")
        answer = self.catalogs.answer(
            shop, query, body.get("variables") or {}, str(request.base_url)
        )
        if answer is not None:
            return answer
        if "currentAppInstallation" in query:
            return JSONResponse(
                {"data": {"currentAppInstallation": {"id": "gid://shopify/AppInstallation/1"}}}
            )
        if "metafieldsSet" in query:
            for field in body["variables"]["metafields"]:
                self.metafields.setdefault(shop, {})[field["key"]] = field["value"]
            return JSONResponse({"data": {"metafieldsSet": {"userErrors": []}}})
        if "metafieldsDelete" in query:
            deleted = []
            for field in body["variables"]["metafields"]:
                found = self.metafields.get(shop, {}).pop(field["key"], None)
                deleted.append(field if found is not None else None)
            return JSONResponse(
                {"data": {"metafieldsDelete": {"deletedMetafields": deleted, "userErrors": []}}}
            )
        if query.replace(" ", "") == "{shop{id}}":
            return JSONResponse({"data": {"shop": {"id": "gid://shopify/Shop/1"}}})
        return JSONResponse({"errors": [{"message": "unknown query"}]})
