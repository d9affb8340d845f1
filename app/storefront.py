"""The local storefront (development only): the real theme block and Shopify's app proxy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from liquid import Environment
from starlette.types import ASGIApp, Receive, Scope, Send

from app.shopify import signed_proxy_query
from app.validation import is_customer_id

EXTENSION = Path(__file__).resolve().parent.parent / "extensions" / "chat-widget"
ASSETS = EXTENSION / "assets"
PROXY_PREFIX = "/apps/chat"
LOCALES = ("en", "fr", "de", "es")
CUSTOMER_COOKIE = "scw_dev_customer"
# Shopify sets these itself; whatever a browser sends under these names never reaches the app.
RESERVED = frozenset({"shop", "path_prefix", "timestamp", "signature", "logged_in_customer_id"})
_SCHEMA = re.compile(r"{%-?\s*schema\s*-?%}(.*?){%-?\s*endschema\s*-?%}", re.S)


def _lookup(table: dict[str, Any], key: str) -> Any:
    node: Any = table
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@cache
def _locale(name: str) -> dict[str, Any]:
    path = EXTENSION / "locales" / ("en.default.json" if name == "en" else f"{name}.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def translate(locale: str) -> Callable[..., str]:
    """Liquid's `t` filter as Shopify applies it: the locale's string, English as fallback."""

    def t(key: str, **variables: Any) -> str:
        text = _lookup(_locale(locale), key) or _lookup(_locale("en"), key)
        if not isinstance(text, str):
            return f"translation missing: {locale}.{key}"
        for name, value in variables.items():
            text = re.sub(r"{{\s*" + re.escape(name) + r"\s*}}", str(value), text)
        return text

    return t


def liquid_json(value: Any) -> str:
    # Like Shopify's `json`: safe inside a <script> element.
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def asset_url(name: str) -> str:
    path = ASSETS / name
    version = int(path.stat().st_mtime) if path.exists() else 0
    return f"/storefront/assets/{name}?v={version}"


def _block_source() -> str:
    return (EXTENSION / "blocks" / "chat-embed.liquid").read_text(encoding="utf-8")


def block_schema(source: str | None = None) -> dict[str, Any]:
    match = _SCHEMA.search(source if source is not None else _block_source())
    assert match, "chat-embed.liquid has no schema"
    schema: dict[str, Any] = json.loads(match.group(1))
    return schema


def render_chat_embed(
    *,
    shop: str,
    locale: str = "en",
    settings: dict[str, Any] | None = None,
    app_settings: dict[str, str | None] | None = None,
) -> str:
    """Render the real app embed block with its schema defaults, as the theme editor would."""
    source = _block_source()
    schema = block_schema(source)
    defaults = {s["id"]: s.get("default", "") for s in schema["settings"]}
    env = Environment()
    env.filters["t"] = translate(locale if locale in LOCALES else "en")
    env.filters["json"] = liquid_json
    env.filters["asset_url"] = asset_url
    template = env.from_string(_SCHEMA.sub("", source))
    stylesheet = schema.get("stylesheet")
    head = f'<link rel="stylesheet" href="{asset_url(stylesheet)}">\n' if stylesheet else ""
    # What the dashboard publishes as app-owned metafields, as Liquid sees them.
    metafields = {k: {"value": v} for k, v in (app_settings or {}).items() if v}
    return head + template.render(
        block={"settings": {**defaults, **(settings or {})}},
        shop={"permanent_domain": shop},
        app={"metafields": {"chat": metafields}},
    )


class AppProxyEmulator:
    """Plays Shopify's app proxy: /apps/chat/<path> becomes a signed request to /proxy/<path>."""

    def __init__(self, *, shop: str, secret: str) -> None:
        self.shop = shop
        self.secret = secret
        self.target: ASGIApp | None = None

    def customer_of(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    key, _, raw = part.strip().partition("=")
                    if key == CUSTOMER_COOKIE and is_customer_id(raw):
                        return raw
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None
        rest = scope["path"][len(PROXY_PREFIX) :]
        query = [
            (key, value)
            for key, value in parse_qsl(
                scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
            )
            if key not in RESERVED
        ]
        signed = signed_proxy_query(
            shop=self.shop,
            secret=self.secret,
            customer_id=self.customer_of(scope),
            extra=dict(query),
            path_prefix=PROXY_PREFIX,
        )
        path = "/proxy" + rest
        forwarded = dict(scope)
        forwarded.update(
            path=path, raw_path=path.encode(), query_string=signed.encode(), root_path=""
        )
        await self.target(forwarded, receive, send)
