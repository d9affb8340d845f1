"""The local storefront (development only): the real theme block and Shopify's app proxy."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from liquid import Environment
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.repo.catalog import StoredProduct
from app.shopify import signed_proxy_query
from app.validation import is_customer_id

EXTENSION = Path(__file__).resolve().parents[2] / "extensions" / "chat-widget"
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


def _block_source(name: str = "chat-embed.liquid") -> str:
    return (EXTENSION / "blocks" / name).read_text(encoding="utf-8")


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
    product: dict[str, Any] | None = None,
    customer_id: str | None = None,
) -> str:
    """Render the real app embed block with its schema defaults, as the theme editor would.

    `product` is Liquid's product object (liquid_product), given on a product page only: as
    on Shopify, the block sees no `product` anywhere else; `customer_id` is the logged-in
    customer's (Liquid's `customer`, absent for a guest)."""
    return render_block(
        "chat-embed.liquid",
        shop=shop,
        locale=locale,
        settings=settings,
        app_settings=app_settings,
        product=product,
        customer_id=customer_id,
    )


def render_block(
    name: str,
    *,
    shop: str,
    locale: str = "en",
    settings: dict[str, Any] | None = None,
    app_settings: dict[str, str | None] | None = None,
    product: dict[str, Any] | None = None,
    customer_id: str | None = None,
) -> str:
    """Render one of the extension's blocks with its schema defaults and these settings."""
    source = _block_source(name)
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
        block={"settings": {**defaults, **(settings or {})}, "shopify_attributes": ""},
        shop={"permanent_domain": shop},
        app={"metafields": {"chat": metafields}},
        **({"product": product} if product is not None else {}),
        **({"customer": {"id": int(customer_id)}} if customer_id else {}),
    )


def liquid_product(product: StoredProduct, *, storefront_path: str) -> dict[str, Any]:
    """The fields of Shopify's Liquid `product` a block may read; money in cents, as there."""

    def cents(amount: Decimal | None) -> int | None:
        return None if amount is None else int(amount * 100)

    variants = [
        {
            "id": v.id,
            "title": v.title,
            "price": cents(v.price),
            "compare_at_price": cents(v.compare_at_price),
            "available": v.available,
            "options": list(v.options.values()),
            "sku": v.sku,
        }
        for v in product.variants
    ]
    first = next((v for v in variants if v["available"]), variants[0] if variants else None)
    return {
        "id": product.product_id,
        "handle": product.handle,
        "title": product.title,
        "type": product.product_type,
        "vendor": product.vendor,
        "tags": list(product.tags),
        "url": f"{storefront_path}/products/{product.handle}",
        "available": product.available,
        "price": cents(product.price_min),
        "price_min": cents(product.price_min),
        "price_max": cents(product.price_max),
        "compare_at_price": cents(product.compare_at_min),
        "options": [name for name, _ in product.options],
        "variants": variants,
        "selected_or_first_available_variant": first,
    }


class AppProxyEmulator:
    """Plays Shopify's app proxy: /apps/chat/<path> becomes a signed request to /proxy/<path>.

    Two switches play what the real proxy may do to a stream (DEV_PROXY_BUFFERING,
    DEV_PROXY_CUT_AFTER; tests set the attributes): `buffering` holds a whole response before
    passing it on; `cut_after` ends a response after that many seconds, mid-stream (a 504 if
    it had not begun), and the app hears the shopper leave."""

    def __init__(
        self, *, shop: str, secret: str, buffering: bool = False, cut_after: float = 0.0
    ) -> None:
        self.shop = shop
        self.secret = secret
        self.buffering = buffering
        self.cut_after = cut_after
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
        if self.buffering:
            send = _buffered(send)
        if self.cut_after > 0:
            await _cut(self.target, self.cut_after, forwarded, receive, send)
        else:
            await self.target(forwarded, receive, send)


def _buffered(send: Send) -> Send:
    """A send that passes the response on only once it is whole, in one piece."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def send_whole(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks)})

    return send_whole


async def _cut(app: ASGIApp, after: float, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the app, ending its response after `after` seconds as a proxy's timeout would."""
    cut = asyncio.Event()
    lock = asyncio.Lock()  # the cut's last write never interleaves with one of the app's
    started = ended = False

    async def guarded_send(message: Message) -> None:
        nonlocal started, ended
        async with lock:
            if cut.is_set():
                return  # the proxy has hung up: the app's writes go nowhere
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                ended = True
            await send(message)

    async def guarded_receive() -> Message:
        if cut.is_set():
            return {"type": "http.disconnect"}
        received = asyncio.ensure_future(receive())
        hung_up = asyncio.ensure_future(cut.wait())
        await asyncio.wait({received, hung_up}, return_when=asyncio.FIRST_COMPLETED)
        hung_up.cancel()
        if received.done():
            return received.result()
        received.cancel()
        return {"type": "http.disconnect"}

    running = asyncio.ensure_future(app(scope, guarded_receive, guarded_send))
    done, _ = await asyncio.wait({running}, timeout=after)
    if not done:
        async with lock:
            cut.set()
            if not started:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 504,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                    }
                )
                await send({"type": "http.response.body", "body": b"Gateway Timeout"})
            elif not ended:
                await send({"type": "http.response.body", "body": b""})
    await running
